// Hostile input against `lowbit serve` (the server of src/lowbit/server/, in-process on
// 127.0.0.1 with stories5M): malformed and truncated JSON, wrong types, huge max_tokens, huge
// bodies, a slow client, clients that disconnect mid-stream, a full queue, 1,000 requests without
// the key. Each gets the right status and OpenAI's error shape, and the server still serves after.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <regex>
#include <thread>

#include <nlohmann/json.hpp>

#include "lowbit/server/serve.h"
#include "test_data.h"

namespace lowbit::server {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

class Running {
 public:
  explicit Running(ServeOptions o) {
    thread_ = std::thread([this, o] {
      status_ = Serve(o, stop_, [this](const std::string& line) {
        std::smatch m;
        if (std::regex_search(line, m, std::regex("listening on http://127.0.0.1:(\\d+)"))) port_ = std::stoi(m[1]);
        if (line.rfind("model ", 0) == 0) ready_ = true;
      });
      ready_ = true;
    });
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (!ready_ && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
  }
  ~Running() {
    stop_ = true;
    thread_.join();
  }
  int port() const { return port_; }
  httplib::Client Client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(30, 0);
    return c;
  }

 private:
  std::atomic<bool> stop_{false}, ready_{false};
  std::atomic<int> port_{0};
  Status status_;
  std::thread thread_;
};

ServeOptions Options() {
  ServeOptions o;
  o.model = testing::SharedPath("models/stories5M/stories5M-f32.gguf");
  o.chat_template = "chatml";
  o.http.port = 0;
  o.slots = 2;
  o.ctx = 512;
  o.threads = 2;
  return o;
}

// The body is OpenAI's error object; returns its message.
std::string ErrorOf(const httplib::Result& r, int status) {
  EXPECT_TRUE(r) << "no response";
  if (!r) return "";
  EXPECT_EQ(r->status, status) << r->body;
  Json j = Json::parse(r->body, nullptr, false);
  EXPECT_TRUE(j.is_object() && j.contains("error") && j["error"].contains("message") && j["error"].contains("type")) << r->body;
  if (!j.is_object() || !j.contains("error")) return "";
  return j["error"]["message"].get<std::string>() + " | param=" + j["error"]["param"].dump();
}

httplib::Result Post(httplib::Client& c, const std::string& path, const std::string& body, const httplib::Headers& h = {}) {
  return c.Post(path.c_str(), h, body, "application/json");
}

int Metric(httplib::Client& c, const std::string& name) {
  auto r = c.Get("/metrics");
  if (!r) return -1;
  std::smatch m;
  if (!std::regex_search(r->body, m, std::regex("\nlowbit_" + name + " (\\S+)"))) return -1;
  return static_cast<int>(std::stod(m[1]));
}

bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return cond();
}

// A raw loopback connection.
int Connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

std::string HttpRequest(const std::string& path, const std::string& body) {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

void ExpectStillServes(httplib::Client& c) {
  auto r = Post(c, "/v1/completions", R"({"prompt": "Tom had a", "max_tokens": 5, "seed": 1})");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Json::parse(r->body)["usage"]["completion_tokens"].get<int>() > 0, true);
}

TEST(ServeHostile, MalformedTruncatedAndWronglyTypedRequests) {
  LOWBIT_REQUIRE_SHARED();
  Running s(Options());
  ASSERT_GT(s.port(), 0);
  auto c = s.Client();
  EXPECT_NE(ErrorOf(Post(c, "/v1/chat/completions", "{not json"), 400).find("not valid JSON"), std::string::npos);
  EXPECT_NE(ErrorOf(Post(c, "/v1/chat/completions", R"({"messages": [{"role": "user", "content": "hi"})"), 400).find("not valid JSON"), std::string::npos);
  EXPECT_NE(ErrorOf(Post(c, "/v1/chat/completions", ""), 400).find("not valid JSON"), std::string::npos);
  EXPECT_NE(ErrorOf(Post(c, "/v1/chat/completions", "[1, 2]"), 400).find("JSON object"), std::string::npos);
  const std::pair<const char*, const char*> cases[] = {
      {R"({"messages": "hi"})", "messages"},
      {R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content"},
      {R"({"messages": [{"content": "x"}]})", "messages[0].role"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", "messages[0].content[0]"},
      {R"({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"})", "temperature"},
      {R"({"messages": [{"role": "user", "content": "x"}], "temperature": 7})", "temperature"},
      {R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": -1})", "max_tokens"},
      {R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 1.5})", "max_tokens"},
      {R"({"messages": [{"role": "user", "content": "x"}], "stream": "yes"})", "stream"},
      {R"({"messages": [{"role": "user", "content": "x"}], "stop": 5})", "stop"},
      {R"({"messages": [{"role": "user", "content": "x"}], "seed": "abc"})", "seed"},
      {R"({"messages": [{"role": "user", "content": "x"}], "n": 3})", "n"},
      {R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 50, "logprobs": true})", "top_logprobs"},
  };
  for (const auto& [body, field] : cases) {
    const std::string msg = ErrorOf(Post(c, "/v1/chat/completions", body), 400);
    EXPECT_NE(msg.find(std::string("param=\"") + field + "\""), std::string::npos) << body << " -> " << msg;
  }
  EXPECT_NE(ErrorOf(Post(c, "/v1/completions", R"({"prompt": [1, 2, 99999]})"), 400).find("outside the vocabulary"), std::string::npos);
  EXPECT_NE(ErrorOf(Post(c, "/v1/completions", R"({"prompt": {"a": 1}})"), 400).find("param=\"prompt\""), std::string::npos);
  EXPECT_NE(ErrorOf(Post(c, "/detokenize", R"({"tokens": [1, -5]})"), 400).find("token id"), std::string::npos);
  EXPECT_NE(ErrorOf(c.Get("/v1/nothing"), 404).find("no route"), std::string::npos);
  // A field nested a million levels deep (2 MB, under the body limit): copying the message used to
  // recurse once per level and overflow the handler thread's stack. 64 levels are plenty.
  const std::string deep = R"({"messages": [{"role": "user", "content": "x", "extra": )" + std::string(1000000, '[') + std::string(1000000, ']') + "}]}";
  EXPECT_NE(ErrorOf(Post(c, "/v1/chat/completions", deep), 400).find("nested deeper than 64 levels"), std::string::npos);
  EXPECT_NE(ErrorOf(Post(c, "/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x", "extra": )" + std::string(65, '[') + std::string(65, ']') + "}]}"), 400)
                .find("nested deeper"),
            std::string::npos);
  // Invalid UTF-8 in a message: served, and the answer is valid JSON.
  auto r = Post(c, "/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"a\xff\xfe b\"}], \"max_tokens\": 4}");
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->status == 200 || r->status == 400) << r->body;
  EXPECT_FALSE(Json::parse(r->body, nullptr, false).is_discarded());
  ExpectStillServes(c);
}

TEST(ServeHostile, HugeMaxTokensAndPromptsGetTheNumbers) {
  LOWBIT_REQUIRE_SHARED();
  Running s(Options());
  auto c = s.Client();
  std::string msg = ErrorOf(Post(c, "/v1/completions", R"({"prompt": "Tom", "max_tokens": 1000000000000})"), 400);
  EXPECT_NE(msg.find("maximum context length is 256 tokens"), std::string::npos) << msg;
  EXPECT_NE(msg.find("1000000000000 in the completion"), std::string::npos) << msg;
  std::string long_prompt;
  for (int i = 0; i < 300; ++i) long_prompt += "dog ";
  msg = ErrorOf(Post(c, "/v1/completions", Json{{"prompt", long_prompt}}.dump()), 400);
  EXPECT_NE(msg.find("maximum context length is 256 tokens"), std::string::npos) << msg;
  ExpectStillServes(c);
}

TEST(ServeHostile, HugeBodiesGet413) {
  LOWBIT_REQUIRE_SHARED();
  ServeOptions o = Options();
  o.http.max_body = 1 << 20;
  Running s(o);
  auto c = s.Client();
  const std::string huge = R"({"prompt": ")" + std::string(3 << 20, 'a') + R"("})";
  auto r = Post(c, "/v1/completions", huge);
  if (r) {  // the server may also close the connection before the client has sent it all
    EXPECT_EQ(r->status, 413) << r->body.substr(0, 200);
  }
  auto c2 = s.Client();
  ExpectStillServes(c2);
}

TEST(ServeHostile, SlowClientIsServedAndOthersAreNotBlocked) {
  LOWBIT_REQUIRE_SHARED();
  Running s(Options());
  const int fd = Connect(s.port());
  ASSERT_GE(fd, 0);
  const std::string req = HttpRequest("/v1/completions", R"({"prompt": "The cat", "max_tokens": 4, "seed": 2})");
  std::thread others([&] {
    auto c = s.Client();
    for (int i = 0; i < 3; ++i) ExpectStillServes(c);
  });
  for (size_t i = 0; i < req.size(); i += 8) {  // 8 bytes every 10 ms
    ASSERT_GT(::send(fd, req.data() + i, std::min<size_t>(8, req.size() - i), MSG_NOSIGNAL), 0);
    std::this_thread::sleep_for(10ms);
  }
  others.join();
  char buf[4096];
  const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
  ::close(fd);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)).rfind("HTTP/1.1 200", 0), 0u) << std::string(buf, static_cast<size_t>(n));
}

TEST(ServeHostile, ClientsThatDisconnectFreeTheirSlots) {
  LOWBIT_REQUIRE_SHARED();
  ServeOptions o = Options();
  o.ctx = 2 * 4096;  // long replies: they would run for seconds
  Running s(o);
  auto c = s.Client();
  for (const bool stream : {true, false}) {
    const int before = Metric(c, "requests_cancelled_total");
    const int fd = Connect(s.port());
    ASSERT_GE(fd, 0);
    const std::string body = Json{{"prompt", "Once upon a time"}, {"stream", stream}, {"ignore_eos", true}, {"max_tokens", 4000}}.dump();
    const std::string req = HttpRequest("/v1/completions", body);
    ASSERT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
    ASSERT_TRUE(WaitFor([&] { return Metric(c, "slots_busy") == 1; }, 5s));
    if (stream) {
      char buf[512];
      ASSERT_GT(::recv(fd, buf, sizeof(buf), 0), 0);  // the stream has started
    }
    ::close(fd);
    EXPECT_TRUE(WaitFor([&] { return Metric(c, "slots_busy") == 0; }, 3s)) << (stream ? "streaming" : "non-streaming") << " request kept its slot";
    EXPECT_EQ(Metric(c, "requests_cancelled_total"), before + 1);
  }
  ExpectStillServes(c);
}

TEST(ServeHostile, FullQueueGets503WithRetryAfter) {
  LOWBIT_REQUIRE_SHARED();
  ServeOptions o = Options();
  o.slots = 1;
  o.ctx = 4096;
  o.max_queue = 0;
  Running s(o);
  auto c = s.Client();
  const int fd = Connect(s.port());  // holds the only slot
  const std::string req = HttpRequest("/v1/completions", R"({"prompt": "Once", "stream": true, "ignore_eos": true, "max_tokens": 4000})");
  ASSERT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
  ASSERT_TRUE(WaitFor([&] { return Metric(c, "slots_busy") == 1; }, 5s));
  auto r = Post(c, "/v1/completions", R"({"prompt": "Tom", "max_tokens": 3})");
  EXPECT_NE(ErrorOf(r, 503).find("busy"), std::string::npos);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->get_header_value("Retry-After"), "1");
  ::close(fd);
  ASSERT_TRUE(WaitFor([&] { return Metric(c, "slots_busy") == 0; }, 3s));
  ExpectStillServes(c);
}

TEST(ServeHostile, AThousandRequestsWithoutTheKey) {
  LOWBIT_REQUIRE_SHARED();
  ServeOptions o = Options();
  o.http.api_key = "right-key";
  Running s(o);
  auto c = s.Client();
  c.set_keep_alive(true);
  c.set_tcp_nodelay(true);
  int unauthorized = 0;
  for (int i = 0; i < 1000; ++i) {
    httplib::Headers h;
    if (i % 2 == 1) h.emplace("Authorization", "Bearer wrong-" + std::to_string(i));
    auto r = Post(c, i % 3 == 0 ? "/v1/completions" : "/v1/chat/completions", R"({"prompt": "x", "messages": []})", h);
    unauthorized += r && r->status == 401 && r->body.find("invalid_api_key") != std::string::npos;
  }
  EXPECT_EQ(unauthorized, 1000);
  EXPECT_EQ(c.Get("/health")->status, 200);
  auto r = Post(c, "/v1/completions", R"({"prompt": "Tom had a", "max_tokens": 5})", {{"Authorization", "Bearer right-key"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Metric(c, "http_unauthorized_total"), -1) << "metrics need the key too";
  httplib::Client k("127.0.0.1", s.port());
  k.set_bearer_token_auth("right-key");
  auto m = k.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("lowbit_http_unauthorized_total 1001"), std::string::npos) << m->body;  // and the /metrics above
}

TEST(ServeHostile, HealthIs503UntilTheModelIsLoaded) {
  HttpOptions o;
  o.port = 0;
  HttpServer http(o);
  auto port = http.Start(1);
  ASSERT_TRUE(port.ok()) << port.status().message();
  httplib::Client c("127.0.0.1", *port);
  EXPECT_NE(ErrorOf(c.Get("/health"), 503).find("Loading model"), std::string::npos);
  EXPECT_NE(ErrorOf(Post(c, "/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}]})"), 503).find("Loading"), std::string::npos);
  http.Stop();
}

}  // namespace
}  // namespace lowbit::server

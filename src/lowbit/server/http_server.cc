#include "lowbit/server/http_server.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "lowbit/server/chat_page.h"
#include "lowbit/server/openai.h"

namespace lowbit::server {
namespace {

using Clock = std::chrono::steady_clock;

std::string RandomId(const char* prefix) {
  thread_local std::mt19937_64 rng(std::random_device{}());
  return fmt::format("{}{:016x}{:08x}", prefix, rng(), static_cast<uint32_t>(rng()));
}

void SendError(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(Dump(e.ToJson()), "application/json");
}

ApiError Unavailable(const std::string& message) { return ApiError{503, message, "unavailable_error", "", ""}; }

// One request in flight, shared by the content provider and its releaser.
struct Flight {
  std::shared_ptr<RequestChannel> ch;
  const ServingState* state = nullptr;
  ResponseMeta meta;
  bool stream = false, include_usage = false, logprobs = false;
  bool started = false, finished = false;
  std::string text;                   // non-streaming: the whole text
  std::vector<TokenLogprob> tokens;   // non-streaming with logprobs
  size_t text_offset = 0;
  Clock::time_point last_write = Clock::now();
};

bool WriteEvent(httplib::DataSink& sink, const Json& j) {
  const std::string s = "data: " + Dump(j) + "\n\n";
  return sink.write(s.data(), s.size());
}

}  // namespace

struct HttpServer::Impl {
  HttpOptions o;
  httplib::Server http;
  std::thread thread;
  std::atomic<bool> listen_returned{false};
  std::atomic<const ServingState*> ready{nullptr};
  ServingState state;
  std::atomic<int64_t> http_requests{0}, unauthorized{0};

  TokenTextFn TextFn(const ServingState* s) const {
    return [s](int32_t t) { return s->scheduler->TokenText(t); };
  }

  // The key check runs in the handler, after httplib has read the body: answering from the
  // pre-routing hook would leave an unread body on a keep-alive connection.
  bool Authorized(const httplib::Request& req, httplib::Response& res) {
    if (o.api_key.empty()) return true;
    const std::string auth = req.get_header_value("Authorization");
    if (auth == "Bearer " + o.api_key) return true;
    ++unauthorized;
    SendError(res, ApiError{401, auth.empty() ? "missing API key: send 'Authorization: Bearer KEY'" : "invalid API key", "authentication_error", "",
                            "invalid_api_key"});
    return false;
  }
  httplib::Server::Handler Keyed(httplib::Server::Handler h) {
    return [this, h = std::move(h)](const httplib::Request& req, httplib::Response& res) {
      if (Authorized(req, res)) h(req, res);
    };
  }

  void Routes() {
    http.set_pre_routing_handler([this](const httplib::Request&, httplib::Response&) {
      ++http_requests;
      return httplib::Server::HandlerResponse::Unhandled;
    });
    http.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      if (res.status == 404) SendError(res, ApiError{404, "no route " + req.method + " " + req.path, "not_found_error", "", ""});
      else if (res.status == 413) SendError(res, ApiError{413, "the request body is too large", "invalid_request_error", "", "request_too_large"});
      else if (res.status == 400) SendError(res, ApiError{400, "malformed HTTP request", "invalid_request_error", "", ""});
      else SendError(res, ApiError{res.status, "HTTP error " + std::to_string(res.status), res.status >= 500 ? "server_error" : "invalid_request_error", "", ""});
      return httplib::Server::HandlerResponse::Handled;
    }));
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
      SendError(res, ApiError{500, "internal error", "server_error", "", ""});
    });
    http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      if (ready.load() == nullptr) return SendError(res, Unavailable("Loading model"));
      res.set_content(R"({"status":"ok"})", "application/json");
    });
    http.Get("/", [](const httplib::Request&, httplib::Response& res) { res.set_content(ChatPageHtml(), "text/html; charset=utf-8"); });
    auto models = [this](const httplib::Request&, httplib::Response& res) {
      const ServingState* s = ready.load();
      if (s == nullptr) return SendError(res, Unavailable("Loading model"));
      Json m = {{"id", s->model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "lowbit"},
                {"meta", {{"n_ctx_slot", s->scheduler->n_ctx()}, {"slots", s->scheduler->options().n_slots}, {"n_vocab", s->n_vocab}}}};
      res.set_content(Dump(Json{{"object", "list"}, {"data", Json::array({m})}}), "application/json");
    };
    http.Get("/v1/models", Keyed(models));
    http.Get("/models", Keyed(models));
    http.Get("/metrics", Keyed([this](const httplib::Request&, httplib::Response& res) {
      const ServingState* s = ready.load();
      if (s == nullptr) return SendError(res, Unavailable("Loading model"));
      res.set_content(MetricsText(s->scheduler->Metrics()), "text/plain; version=0.0.4");
    }));
    http.Post("/tokenize", Keyed([this](const httplib::Request& req, httplib::Response& res) { Tokenize(req, res); }));
    http.Post("/detokenize", Keyed([this](const httplib::Request& req, httplib::Response& res) { Detokenize(req, res); }));
    http.Post("/apply-template", Keyed([this](const httplib::Request& req, httplib::Response& res) { ApplyTemplate(req, res); }));
    http.Post("/v1/chat/completions", Keyed([this](const httplib::Request& req, httplib::Response& res) { Complete(req, res, true); }));
    http.Post("/v1/completions", Keyed([this](const httplib::Request& req, httplib::Response& res) { Complete(req, res, false); }));
    // Aliases clients use.
    http.Post("/chat/completions", Keyed([this](const httplib::Request& req, httplib::Response& res) { Complete(req, res, true); }));
    http.Post("/completions", Keyed([this](const httplib::Request& req, httplib::Response& res) { Complete(req, res, false); }));
  }

  std::string MetricsText(const SchedulerMetrics& m) const {
    std::string out;
    auto add = [&](const char* name, const char* type, const char* help, double v) {
      out += fmt::format("# HELP lowbit_{} {}\n# TYPE lowbit_{} {}\nlowbit_{} {}\n", name, help, name, type, name, v);
    };
    const double busy_s = m.prompt_seconds + m.decode_seconds;
    add("requests_total", "counter", "Generation requests started.", static_cast<double>(m.requests_total));
    add("requests_cancelled_total", "counter", "Requests whose client went away.", static_cast<double>(m.requests_cancelled));
    add("http_requests_total", "counter", "HTTP requests received.", static_cast<double>(http_requests.load()));
    add("http_unauthorized_total", "counter", "HTTP requests refused for a missing or wrong key.", static_cast<double>(unauthorized.load()));
    add("prompt_tokens_total", "counter", "Prompt tokens of started requests.", static_cast<double>(m.prompt_tokens_total));
    add("prompt_tokens_cached_total", "counter", "Prompt tokens reused from a slot's cache.", static_cast<double>(m.prompt_tokens_cached));
    add("generated_tokens_total", "counter", "Tokens generated.", static_cast<double>(m.generated_tokens_total));
    add("forward_steps_total", "counter", "Batched forward steps.", static_cast<double>(m.steps));
    add("draft_tokens_total", "counter", "Speculative decoding (--lookup): tokens drafted and checked.", static_cast<double>(m.drafted_tokens_total));
    add("draft_accepted_tokens_total", "counter", "Speculative decoding: drafted tokens accepted.", static_cast<double>(m.accepted_tokens_total));
    add("draft_accept_ratio", "gauge", "Accepted / drafted tokens.", m.drafted_tokens_total > 0 ? static_cast<double>(m.accepted_tokens_total) / static_cast<double>(m.drafted_tokens_total) : 0.0);
    add("busy_seconds_total", "counter", "Seconds spent in forward steps.", busy_s);
    add("generated_tokens_per_second", "gauge", "Generated tokens per second of forward time.", busy_s > 0 ? static_cast<double>(m.generated_tokens_total) / busy_s : 0.0);
    add("slots_busy", "gauge", "Slots serving a request.", m.slots_busy);
    add("slots_total", "gauge", "Slots.", m.slots);
    add("requests_queued", "gauge", "Requests waiting for a slot.", m.queued);
    add("kv_cache_used_positions", "gauge", "KV cache positions held by active requests.", static_cast<double>(m.kv_used));
    add("kv_cache_capacity_positions", "gauge", "KV cache positions (slots x context).", static_cast<double>(m.kv_capacity));
    add("kv_cache_usage_ratio", "gauge", "Used / capacity.", m.kv_capacity > 0 ? static_cast<double>(m.kv_used) / static_cast<double>(m.kv_capacity) : 0.0);
    return out;
  }

  // A JSON object body, or an error already in `res`.
  std::optional<Json> Body(const httplib::Request& req, httplib::Response& res) {
    Json body = Json::parse(req.body, nullptr, false);
    if (body.is_discarded()) {
      SendError(res, ApiError{400, "the request body is not valid JSON", "invalid_request_error", "", ""});
      return std::nullopt;
    }
    if (!body.is_object()) {
      SendError(res, ApiError{400, "the request body must be a JSON object", "invalid_request_error", "", ""});
      return std::nullopt;
    }
    return body;
  }

  void Tokenize(const httplib::Request& req, httplib::Response& res) {
    const ServingState* s = ready.load();
    if (s == nullptr) return SendError(res, Unavailable("Loading model"));
    auto body = Body(req, res);
    if (!body) return;
    auto it = body->find("content");
    if (it == body->end() || !it->is_string()) return SendError(res, ApiError{400, "'content' must be a string", "invalid_request_error", "content", ""});
    bool add_special = false, with_pieces = false;
    if (auto b = body->find("add_special"); b != body->end() && b->is_boolean()) add_special = b->get<bool>();
    if (auto b = body->find("with_pieces"); b != body->end() && b->is_boolean()) with_pieces = b->get<bool>();
    const std::vector<int32_t> toks = s->tokenizer->EncodeSpecial(it->get<std::string>(), add_special);
    Json out = Json::array();
    for (int32_t t : toks) {
      if (with_pieces) out.push_back({{"id", t}, {"piece", s->tokenizer->Decode(t)}});
      else out.push_back(t);
    }
    res.set_content(Dump(Json{{"tokens", out}}), "application/json");
  }

  void Detokenize(const httplib::Request& req, httplib::Response& res) {
    const ServingState* s = ready.load();
    if (s == nullptr) return SendError(res, Unavailable("Loading model"));
    auto body = Body(req, res);
    if (!body) return;
    auto it = body->find("tokens");
    if (it == body->end() || !it->is_array()) return SendError(res, ApiError{400, "'tokens' must be an array of token ids", "invalid_request_error", "tokens", ""});
    std::string text;
    for (const Json& t : *it) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= s->n_vocab) {
        return SendError(res, ApiError{400, fmt::format("'tokens' holds {}, not a token id below {}", t.dump(), s->n_vocab), "invalid_request_error", "tokens", ""});
      }
      text += s->tokenizer->Decode(static_cast<int32_t>(t.get<int64_t>()));
    }
    res.set_content(Dump(Json{{"content", text}}), "application/json");
  }

  void ApplyTemplate(const httplib::Request& req, httplib::Response& res) {
    const ServingState* s = ready.load();
    if (s == nullptr) return SendError(res, Unavailable("Loading model"));
    auto parsed = ParseRequest(req.body, true, s->n_vocab);
    if (auto* e = std::get_if<ApiError>(&parsed)) return SendError(res, *e);
    if (s->chat == nullptr) return SendError(res, NoTemplate());
    auto prompt = s->chat->Render(std::get<ApiRequest>(parsed).messages, true);
    if (!prompt.ok()) return SendError(res, ApiError{400, prompt.status().message(), "invalid_request_error", "messages", ""});
    res.set_content(Dump(Json{{"prompt", *prompt}}), "application/json");
  }

  static ApiError NoTemplate() {
    return ApiError{400, "the model has no chat template; start the server with --chat-template NAME|FILE", "invalid_request_error", "messages", ""};
  }

  void Complete(const httplib::Request& req, httplib::Response& res, bool chat) {
    const ServingState* s = ready.load();
    if (s == nullptr) {
      res.set_header("Retry-After", "5");
      return SendError(res, Unavailable("Loading model"));
    }
    auto parsed = ParseRequest(req.body, chat, s->n_vocab);
    if (auto* e = std::get_if<ApiError>(&parsed)) return SendError(res, *e);
    ApiRequest& r = std::get<ApiRequest>(parsed);
    if (chat) {
      if (s->chat == nullptr) return SendError(res, NoTemplate());
      auto toks = s->chat->Tokens(*s->tokenizer, r.messages, true);
      if (!toks.ok()) return SendError(res, ApiError{400, toks.status().message(), "invalid_request_error", "messages", ""});
      r.gen.prompt = std::move(*toks);
    } else {
      r.gen.prompt = r.prompt_is_tokens ? r.prompt_tokens : s->tokenizer->EncodeSpecial(r.prompt_text);
    }
    const auto n = static_cast<int64_t>(r.gen.prompt.size()), ctx = s->scheduler->n_ctx();
    if (n == 0) return SendError(res, ApiError{400, "the prompt is empty", "invalid_request_error", chat ? "messages" : "prompt", ""});
    if (n >= ctx || (r.gen.max_tokens > 0 && n + r.gen.max_tokens > ctx)) {
      const std::string want = r.gen.max_tokens > 0 ? fmt::format("{} tokens ({} in the prompt, {} in the completion)", n + r.gen.max_tokens, n, r.gen.max_tokens)
                                                    : fmt::format("{} tokens in the prompt and room for at least one more", n);
      return SendError(res, ApiError{400, fmt::format("This model's maximum context length is {} tokens. However, you requested {}. Please reduce the length of the {} or the completion.", ctx, want, chat ? "messages" : "prompt"),
                                     "invalid_request_error", chat ? "messages" : "prompt", "context_length_exceeded"});
    }
    if (!r.seed_given) r.gen.sampling.seed = std::random_device{}() ^ (static_cast<uint64_t>(std::random_device{}()) << 32);
    auto ch = s->scheduler->Submit(std::move(r.gen));
    if (!ch.ok()) {
      if (ch.status().message().rfind("busy", 0) == 0) {
        res.set_header("Retry-After", "1");
        return SendError(res, ApiError{503, "the server is busy: " + ch.status().message() + "; retry later", "server_error", "", "server_busy"});
      }
      return SendError(res, ApiError{400, ch.status().message(), "invalid_request_error", "", ""});
    }
    auto f = std::make_shared<Flight>();
    f->ch = *ch;
    f->state = s;
    f->meta = ResponseMeta{RandomId(chat ? "chatcmpl-" : "cmpl-"), s->model_name,
                           std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count(), chat};
    f->stream = r.stream;
    f->include_usage = r.include_usage;
    f->logprobs = r.logprobs;
    auto release = [f](bool) {
      if (!f->finished) f->ch->Cancel();  // the client went away or the write failed
    };
    if (r.stream) {
      res.set_header("Cache-Control", "no-cache");
      res.set_chunked_content_provider("text/event-stream", [this, f](size_t, httplib::DataSink& sink) { return StreamStep(*f, sink); }, release);
    } else {
      res.set_chunked_content_provider("application/json", [this, f](size_t, httplib::DataSink& sink) { return WholeStep(*f, sink); }, release);
    }
  }

  // One call of the streaming provider: write what has come (waiting up to a quarter second).
  bool StreamStep(Flight& f, httplib::DataSink& sink) {
    if (f.finished) return false;
    if (!f.started) {
      f.started = true;
      if (f.meta.chat && !WriteEvent(sink, ChunkJson(f.meta, std::string(), true, nullptr, nullptr))) return Gone(f);
      f.last_write = Clock::now();
    }
    GenerationEvent ev;
    bool got = f.ch->Next(&ev, std::chrono::milliseconds(250));
    if (!got) {
      if (Clock::now() - f.last_write > std::chrono::milliseconds(500)) {
        if (!sink.write(": keep-alive\n\n", 14)) return Gone(f);
        f.last_write = Clock::now();
      }
      return true;
    }
    do {
      if (ev.kind == GenerationEvent::Kind::kText) {
        Json lp = f.logprobs ? LogprobsJson(ev.tokens, TextFn(f.state), f.meta.chat, f.text_offset) : Json(nullptr);
        f.text_offset += ev.text.size();
        if (!ev.text.empty() || f.logprobs) {
          if (!WriteEvent(sink, ChunkJson(f.meta, ev.text, false, nullptr, lp))) return Gone(f);
        }
      } else if (ev.kind == GenerationEvent::Kind::kDone) {
        f.finished = true;
        bool ok = WriteEvent(sink, ChunkJson(f.meta, f.meta.chat ? std::nullopt : std::optional<std::string>(""), false, &ev.finish_reason, nullptr));
        if (ok && f.include_usage) ok = WriteEvent(sink, UsageChunkJson(f.meta, ev));
        if (ok) ok = sink.write("data: [DONE]\n\n", 14);
        if (ok) sink.done();
        return ok;
      } else {
        f.finished = true;
        WriteEvent(sink, ApiError{500, ev.text, "server_error", "", ""}.ToJson());
        sink.done();
        return true;
      }
    } while (f.ch->Next(&ev, std::chrono::milliseconds(0)));
    f.last_write = Clock::now();
    return true;
  }

  // One call of the non-streaming provider: collect; write the object at the end.
  bool WholeStep(Flight& f, httplib::DataSink& sink) {
    if (f.finished) return false;
    GenerationEvent ev;
    const auto until = Clock::now() + std::chrono::milliseconds(250);
    while (f.ch->Next(&ev, std::chrono::duration_cast<std::chrono::milliseconds>(std::max(until - Clock::now(), Clock::duration::zero())))) {
      if (ev.kind == GenerationEvent::Kind::kText) {
        f.text += ev.text;
        if (f.logprobs) f.tokens.insert(f.tokens.end(), ev.tokens.begin(), ev.tokens.end());
      } else if (ev.kind == GenerationEvent::Kind::kDone) {
        f.finished = true;
        const Json lp = f.logprobs ? LogprobsJson(f.tokens, TextFn(f.state), f.meta.chat, 0) : Json(nullptr);
        const std::string body = Dump(CompletionJson(f.meta, f.text, ev, lp));
        if (!sink.write(body.data(), body.size())) return false;
        sink.done();
        return true;
      } else {
        f.finished = true;
        const std::string body = Dump(ApiError{500, ev.text, "server_error", "", ""}.ToJson());
        sink.write(body.data(), body.size());
        sink.done();
        return true;
      }
      if (Clock::now() >= until) break;
    }
    if (Clock::now() - f.last_write > std::chrono::milliseconds(500)) {  // is the client still there?
      if (!sink.write(" ", 1)) return Gone(f);
      f.last_write = Clock::now();
    }
    return true;
  }

  static bool Gone(Flight& f) {
    f.ch->Cancel();
    return false;
  }
};

HttpServer::HttpServer(HttpOptions o) : impl_(std::make_unique<Impl>()) { impl_->o = std::move(o); }

HttpServer::~HttpServer() { Stop(); }

Expected<int> HttpServer::Start(int slots_hint) {
  Impl& m = *impl_;
  const int threads = m.o.threads > 0 ? m.o.threads : 2 * slots_hint + 8;
  m.http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  m.http.set_payload_max_length(m.o.max_body);
  m.http.set_read_timeout(m.o.read_timeout_s, 0);
  m.http.set_write_timeout(m.o.write_timeout_s, 0);
  m.http.set_keep_alive_max_count(1000);
  m.http.set_keep_alive_timeout(5);
  m.http.set_tcp_nodelay(true);  // each token's chunk goes out at once
  // SO_REUSEADDR and not cpp-httplib's default SO_REUSEPORT: that let a second server bind a port a
  // live one holds (each then got some of the connections), while a restart on the port the last
  // run served from failed for a minute (the connections it closed in TIME_WAIT). SO_REUSEADDR
  // refuses the first and allows the second (tests/server/listen_test.cc).
  m.http.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  m.Routes();
  int port = m.o.port;
  if (port == 0) {
    port = m.http.bind_to_any_port(m.o.host);
    if (port < 0) return Errorf("cannot listen on {}: no free port", m.o.host);
  } else if (!m.http.bind_to_port(m.o.host, port)) {
    return Errorf("cannot listen on {}:{} (in use, or not an address of this machine)", m.o.host, port);
  }
  m.thread = std::thread([&m] {
    m.http.listen_after_bind();
    m.listen_returned = true;
  });
  return port;
}

void HttpServer::SetReady(const ServingState& s) {
  impl_->state = s;
  impl_->ready.store(&impl_->state);
}

void HttpServer::Stop() {
  if (impl_ && impl_->thread.joinable()) {
    // cpp-httplib's stop() does nothing until the listening thread has started its loop: a Stop right
    // after Start would leave that thread in accept() and this join waiting for ever.
    while (!impl_->http.is_running() && !impl_->listen_returned) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    impl_->http.stop();
    impl_->thread.join();
  }
}

}  // namespace lowbit::server

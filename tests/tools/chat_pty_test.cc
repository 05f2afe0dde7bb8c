// `lowbit chat` through a pseudo-terminal, as a person uses it: a reply streams after the prompt,
// the next turn reuses the history in the KV cache, Ctrl-C stops a long reply and the chat goes
// on, /reset and /system work, /bye ends it with exit code 0.
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <regex>
#include <string>

#include "test_data.h"

namespace lowbit {
namespace {

using namespace std::chrono_literals;

class Pty {
 public:
  explicit Pty(const std::vector<std::string>& args) {
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_ = forkpty(&fd_, nullptr, nullptr, nullptr);
    if (pid_ == 0) {
      execv(argv[0], argv.data());
      _exit(127);
    }
  }
  ~Pty() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return pid_ > 0; }
  void Type(const std::string& s) { ASSERT_EQ(write(fd_, s.data(), s.size()), static_cast<ssize_t>(s.size())); }
  // Reads until `pattern` matches the output since `from` (or the time runs out); returns that output.
  std::string Until(const std::regex& pattern, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (std::regex_search(out_.substr(mark_), pattern)) break;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) > 0) {
        char buf[4096];
        const ssize_t n = read(fd_, buf, sizeof(buf));
        if (n <= 0) break;
        out_.append(buf, static_cast<size_t>(n));
      }
    }
    std::string seen = out_.substr(mark_);
    mark_ = out_.size();
    return seen;
  }
  int Wait(std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    int status = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      Until(std::regex("$^"), 10ms);  // drain
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
    }
    return -2;
  }

 private:
  int fd_ = -1;
  pid_t pid_ = -1;
  bool exited_ = false;
  std::string out_;
  size_t mark_ = 0;
};

const std::regex kPrompt("\n> $|^> $");

std::vector<std::string> ChatArgs(const std::vector<std::string>& more) {
  std::vector<std::string> a = {LOWBIT_CLI_PATH, "chat", "-m", testing::SharedPath("models/stories5M/stories5M-f32.gguf"), "--chat-template", "zephyr",
                                "-t", "1", "--temp", "0"};
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

const std::regex kReplyDone("reused from the cache\\)\r?\n> $");

TEST(ChatPty, TurnsReuseTheHistoryResetSystemAndBye) {
  LOWBIT_REQUIRE_SHARED();
  Pty t(ChatArgs({"-c", "512", "-n", "30"}));
  ASSERT_TRUE(t.ok());
  std::string s = t.Until(kPrompt, 30s);
  ASSERT_NE(s.find("Ctrl-C stops a reply"), std::string::npos) << s;

  t.Type("Once upon a time\n");
  s = t.Until(kReplyDone, 60s);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(s, m, std::regex("\\((\\d+) tokens, [0-9.]+ tok/s; prompt (\\d+) tokens, (\\d+) of them reused"))) << s;
  const int first_prompt = std::stoi(m[2]);
  EXPECT_EQ(std::stoi(m[1]), 30);

  // The second turn's prompt starts with the first turn's: its K/V is reused, not recomputed.
  t.Type("What happened next?\n");
  s = t.Until(kReplyDone, 60s);
  ASSERT_TRUE(std::regex_search(s, m, std::regex("prompt (\\d+) tokens, (\\d+) of them reused"))) << s;
  EXPECT_GT(std::stoi(m[1]), first_prompt + 30);
  EXPECT_GE(std::stoi(m[2]), first_prompt) << s;

  t.Type("/reset\n");
  s = t.Until(kPrompt, 10s);
  EXPECT_NE(s.find("(conversation reset)"), std::string::npos) << s;
  t.Type("/system You are a storyteller.\n");
  s = t.Until(kPrompt, 10s);
  EXPECT_NE(s.find("(system prompt set"), std::string::npos) << s;
  t.Type("Hello\n");
  s = t.Until(kReplyDone, 60s);
  EXPECT_NE(s.find("tok/s"), std::string::npos) << s;
  // Ctrl-C at the prompt does not end the chat; /bye does.
  t.Type("\x03");
  s = t.Until(std::regex("/bye to quit\\)"), 5s);
  EXPECT_NE(s.find("/bye to quit"), std::string::npos) << s;
  t.Type("/bye\n");
  EXPECT_EQ(t.Wait(10s), 0);
}

TEST(ChatPty, CtrlCStopsAReplyAndTheChatGoesOn) {
  LOWBIT_REQUIRE_SHARED();
  Pty t(ChatArgs({"-c", "4096"}));  // no -n: a reply would run to the context's end, for seconds
  ASSERT_TRUE(t.ok());
  t.Until(kPrompt, 30s);
  t.Type("Tell me a very long story about a dog\n");
  const std::string started = t.Until(std::regex("dog\r?\n[^\n]{20,}"), 30s);  // the reply is streaming
  t.Type("\x03");
  std::string s = t.Until(kPrompt, 10s);
  EXPECT_NE(s.find("[stopped]"), std::string::npos) << started << s;
  t.Type("And then?\n");  // the chat goes on
  s = t.Until(std::regex("\n[^\n]{20,}"), 30s);
  t.Type("\x03");
  s += t.Until(kPrompt, 10s);
  EXPECT_NE(s.find("[stopped]"), std::string::npos) << s;
  t.Type("/bye\n");
  EXPECT_EQ(t.Wait(10s), 0);
}

}  // namespace
}  // namespace lowbit

// `mpirun -np 2 lowbit serve`: rank 0 serves over HTTP and the other rank runs its shard of every
// step. Concurrent greedy requests to it get the same text as the same requests to a one-process
// server, and the job stops when mpirun is told to. Loopback only, every process under `timeout`;
// skipped where lowbit was built without MPI or mpirun is absent.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "lowbit/parallel/mpi_comm.h"
#include "test_data.h"

namespace lowbit {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

std::string Slurp(const std::string& path) {
  const std::vector<uint8_t> b = testing::ReadFileBytes(path);
  return std::string(b.begin(), b.end());
}

int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 && ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

// A shell command in its own process group, stopped (the whole group) when this goes away.
class Background {
 public:
  Background(const std::string& cmd, const std::string& log) {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setpgid(0, 0);
      const std::string line = "exec " + cmd + " >" + log + " 2>&1";
      ::execl("/bin/sh", "sh", "-c", line.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::setpgid(pid_, pid_);
  }
  ~Background() { Stop(); }
  // SIGTERM to the group, then SIGKILL if it has not ended within 20 s; the exit code (-1: killed).
  int Stop() {
    if (pid_ <= 0) return code_;
    ::kill(-pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 200; ++i) {
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        return code_;
      }
      std::this_thread::sleep_for(100ms);
    }
    ::kill(-pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
    pid_ = 0;
    code_ = -2;
    return code_;
  }

 private:
  pid_t pid_ = -1;
  int code_ = -1;
};

bool WaitHealthy(int port) {
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(1, 0);
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto r = c.Get("/health"); r && r->status == 200) return true;
    std::this_thread::sleep_for(100ms);
  }
  return false;
}

std::string Complete(int port, const std::string& prompt) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(60, 0);
  const Json body = {{"prompt", prompt}, {"max_tokens", 24}, {"temperature", 0}};
  auto r = c.Post("/v1/completions", body.dump(), "application/json");
  if (!r) return "(no response)";
  if (r->status != 200) return "(status " + std::to_string(r->status) + ") " + r->body;
  return Json::parse(r->body)["choices"][0]["text"].get<std::string>();
}

TEST(MpiServe, TwoRanksAnswerAsOneProcess) {
  if (!MpiBuilt()) GTEST_SKIP() << "lowbit was built without MPI";
  if (std::system("command -v mpirun >/dev/null 2>&1") != 0) GTEST_SKIP() << "mpirun not found";
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  const std::string model = testing::SharedPath("models/stories5M/stories5M-f32.gguf");
  const std::string serve = std::string(LOWBIT_CLI_PATH) + " serve -m " + model + " -np 3 -c 768 -t 1 --host 127.0.0.1 --port ";
  const int p1 = FreePort(), p2 = FreePort();
  ASSERT_GT(p1, 0);
  ASSERT_GT(p2, 0);
  Background one("timeout -k 5 200 " + serve + std::to_string(p1), dir.Path("one.log"));
  Background two("timeout -k 5 200 mpirun --allow-run-as-root --oversubscribe --bind-to none --mca btl self,vader,tcp -np 2 " +
                     serve + std::to_string(p2),
                 dir.Path("two.log"));
  ASSERT_TRUE(WaitHealthy(p1)) << Slurp(dir.Path("one.log"));
  ASSERT_TRUE(WaitHealthy(p2)) << Slurp(dir.Path("two.log"));
  const std::vector<std::string> prompts = {"Once upon a time", "The little dog", "Lily and Ben went to the park. They"};
  std::vector<std::string> want, got(prompts.size());
  for (const std::string& p : prompts) want.push_back(Complete(p1, p));
  // Concurrently: the steps batch the three requests together on both ranks.
  std::vector<std::thread> clients;
  for (size_t i = 0; i < prompts.size(); ++i) clients.emplace_back([&, i] { got[i] = Complete(p2, prompts[i]); });
  for (std::thread& t : clients) t.join();
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_FALSE(want[i].empty()) << prompts[i];
    EXPECT_EQ(got[i], want[i]) << prompts[i];
  }
  const std::string log = Slurp(dir.Path("two.log"));
  EXPECT_NE(log.find("2 ranks"), std::string::npos) << log;
  EXPECT_NE(two.Stop(), -2) << "the job did not stop on SIGTERM: " << Slurp(dir.Path("two.log"));
}

}  // namespace
}  // namespace lowbit

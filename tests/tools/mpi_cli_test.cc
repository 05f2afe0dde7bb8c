// The lowbit program under mpirun (2 and 3 ranks on this machine): `run` prints exactly what one process
// prints, `perplexity --json` and `bench --json` print one JSON object with the same keys, and bad
// input (a file missing on one rank, ranks with different models, a rank that dies or stops) ends
// every rank with one line and never hangs. Skipped where lowbit was built without MPI or mpirun is
// absent. Every mpirun runs under `timeout`.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "lowbit/parallel/mpi_comm.h"
#include "test_data.h"

namespace lowbit {
namespace {

struct Result {
  int code = -1;
  std::string out, err;
};

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs a shell command with stdout and stderr captured apart.
Result Shell(const std::string& cmd, const testing::TempDir& dir) {
  const std::string out = dir.Path("stdout"), err = dir.Path("stderr");
  const int status = std::system((cmd + " >" + out + " 2>" + err).c_str());
  Result r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = Slurp(out);
  r.err = Slurp(err);
  return r;
}

const std::string kMpirun = "timeout -k 5 240 mpirun --allow-run-as-root --oversubscribe --bind-to none --mca btl self,vader,tcp ";
const std::string kCli = LOWBIT_CLI_PATH;

int Lines(const std::string& s, const std::string& containing) {
  int n = 0;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) n += line.find(containing) != std::string::npos;
  return n;
}

class MpiCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!MpiBuilt()) GTEST_SKIP() << "lowbit was built without MPI";
    if (std::system("command -v mpirun >/dev/null 2>&1") != 0) GTEST_SKIP() << "mpirun not found";
    if (testing::SharedDir().empty()) GTEST_SKIP() << "shared test data not found";
  }
  std::string Model(const std::string& name) { return testing::SharedPath("models/stories5M/" + name); }
  testing::TempDir dir_;
};

TEST_F(MpiCli, RunPrintsExactlyWhatOneProcessPrints) {
  for (const std::string m : {"stories5M-f32.gguf", "llamacpp/stories5M-q4_k_m.gguf"}) {
    const std::string args = " run -m " + Model(m) + " -p 'Once upon a time' -n 32 --temp 0 -t 1";
    const Result one = Shell(kCli + args, dir_);
    ASSERT_EQ(one.code, 0) << one.err;
    const Result two = Shell(kMpirun + "-np 2 " + kCli + args, dir_);
    ASSERT_EQ(two.code, 0) << two.err;
    EXPECT_EQ(two.out, one.out) << m;
    EXPECT_EQ(Lines(two.err, "generated"), 1) << "only rank 0 reports: " << two.err;
    EXPECT_NE(two.err.find("2 ranks, shards read"), std::string::npos) << two.err;
    // Rank 0 sends the other rank its shard: the same text.
    const Result sent = Shell(kMpirun + "-np 2 " + kCli + args + " --tp-send-weights", dir_);
    ASSERT_EQ(sent.code, 0) << sent.err;
    EXPECT_EQ(sent.out, one.out) << m;
    EXPECT_NE(sent.err.find("received from rank 0"), std::string::npos) << sent.err;
  }
}

// Three ranks (an odd count: MPI's all-reduce then adds three partial sums in its own order, and
// the FFN splits one block per rank) on the quantized model: the same greedy text as one process.
TEST_F(MpiCli, ThreeRanksPrintWhatOneProcessPrints) {
  const std::string args = " run -m " + Model("llamacpp/stories5M-q4_k_m.gguf") + " -p 'Once upon a time' -n 32 --temp 0 -t 1";
  const Result one = Shell(kCli + args, dir_);
  ASSERT_EQ(one.code, 0) << one.err;
  const Result three = Shell(kMpirun + "-np 3 " + kCli + args, dir_);
  ASSERT_EQ(three.code, 0) << three.err;
  EXPECT_EQ(three.out, one.out);
  EXPECT_NE(three.err.find("3 ranks, shards read"), std::string::npos) << three.err;
}

TEST_F(MpiCli, PerplexityAndBenchPrintOneJsonObject) {
  const std::string text = testing::SharedPath("data/tinystories/TinyStoriesV2-GPT4-valid.first100.txt");
  const std::string args = " perplexity -m " + Model("stories5M-f32.gguf") + " -f " + text + " -c 256 --chunks 2 -t 1 --json";
  const Result one = Shell(kCli + args, dir_);
  ASSERT_EQ(one.code, 0) << one.err;
  const Result two = Shell(kMpirun + "-np 2 " + kCli + args, dir_);
  ASSERT_EQ(two.code, 0) << two.err;
  const auto a = nlohmann::json::parse(one.out), b = nlohmann::json::parse(two.out);  // throws unless one object
  ASSERT_TRUE(b.is_object());
  for (auto it = a.begin(); it != a.end(); ++it) EXPECT_TRUE(b.contains(it.key())) << it.key();
  EXPECT_EQ(a.size(), b.size());
  const double pa = a["ppl"], pb = b["ppl"];
  EXPECT_LE(std::fabs(pa - pb) / pa, 1e-5) << pa << " vs " << pb;
  EXPECT_EQ(a["n_scored"], b["n_scored"]);

  const std::string bench = " bench -m " + Model("stories5M-f32.gguf") + " -p 8 -n 4 -r 1 -t 1 --json";
  const Result b1 = Shell(kCli + bench, dir_);
  const Result b2 = Shell(kMpirun + "-np 2 " + kCli + bench, dir_);
  ASSERT_EQ(b1.code, 0) << b1.err;
  ASSERT_EQ(b2.code, 0) << b2.err;
  const auto j1 = nlohmann::json::parse(b1.out), j2 = nlohmann::json::parse(b2.out);
  ASSERT_TRUE(j2.is_object());
  for (auto it = j1.begin(); it != j1.end(); ++it) EXPECT_TRUE(j2.contains(it.key())) << it.key();
  EXPECT_EQ(j1.size(), j2.size());
}

// LOWBIT_TP_PROFILE=1: every rank reports its collectives at exit, on stderr (stdout keeps the one
// JSON object); both ranks took part in the same all-reduces, 2 per layer per forward.
TEST_F(MpiCli, TheProfileCountsEachRanksCollectives) {
  const std::string bench = " bench -m " + Model("stories5M-f32.gguf") + " -p 0 -n 4 -r 1 -t 1 --json";
  const Result r = Shell(kMpirun + "-x LOWBIT_TP_PROFILE=1 -np 2 " + kCli + bench, dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_TRUE(nlohmann::json::parse(r.out).is_object());
  std::array<long, 2> calls = {-1, -1};
  std::istringstream in(r.err);
  for (std::string line; std::getline(in, line);) {
    int rank = -1;
    long n = -1;
    if (std::sscanf(line.c_str(), "lowbit tp profile: rank %d of 2: all-reduce %ld calls", &rank, &n) == 2 && rank >= 0 && rank < 2) {
      calls[rank] = n;
    }
  }
  EXPECT_GT(calls[0], 0) << r.err;
  EXPECT_EQ(calls[0], calls[1]) << r.err;
  EXPECT_EQ(calls[0] % 12, 0) << "stories5M has 6 layers: " << r.err;
  EXPECT_EQ(Lines(r.err, "ms from MPI_Init"), 2) << r.err;
  // Without the variable, no profile.
  const Result quiet = Shell(kMpirun + "-np 2 " + kCli + bench, dir_);
  ASSERT_EQ(quiet.code, 0) << quiet.err;
  EXPECT_EQ(Lines(quiet.err, "lowbit tp profile"), 0) << quiet.err;
}

TEST_F(MpiCli, AFileMissingOnOneRankStopsEveryRankWithOneLine) {
  const std::string tail = " -p 'Once upon a time' -n 8 -t 1";
  const Result r = Shell(kMpirun + "-np 1 " + kCli + " run -m " + Model("stories5M-f32.gguf") + tail + " : -np 1 " + kCli +
                             " run -m " + dir_.Path("missing.gguf") + tail,
                         dir_);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.code, 124) << "timed out";
  EXPECT_EQ(Lines(r.err, "lowbit run: error: rank 1 of 2: " + dir_.Path("missing.gguf") + ": no such file or folder"), 1) << r.err;
  EXPECT_EQ(Lines(r.err, "lowbit run: error: rank 0 of 2: stopping because rank 1 of 2 failed: "), 1) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST_F(MpiCli, RanksWithDifferentModelsStop) {
  const std::string tail = " -p 'Once upon a time' -n 8 -t 1";
  const Result r = Shell(kMpirun + "-np 1 " + kCli + " run -m " + Model("stories5M-f32.gguf") + tail + " : -np 1 " + kCli +
                             " run -m " + Model("llamacpp/stories5M-q4_0.gguf") + tail,
                         dir_);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.code, 124) << "timed out";
  EXPECT_EQ(Lines(r.err, "the ranks disagree on the model: rank 0 has"), 2) << r.err;
  EXPECT_NE(r.err.find("stories5M-q4_0.gguf"), std::string::npos) << r.err;
}

// A script that starts `launch` in the background, waits (bounded) until rank 0 has printed `ready`
// on stdout, sends `signal` to the last lowbit rank it started, and waits for the job.
std::string SignalOneRank(const std::string& launch, const std::string& ready, const std::string& signal, const std::string& out) {
  return launch + " &\n"
         "job=$!\n"
         "for i in $(seq 600); do grep -q '" + ready + "' " + out + " && break; sleep 0.1; done\n"
         "sleep 0.5\n"
         "tree() { for c in $(pgrep -P \"$1\"); do echo \"$c\"; tree \"$c\"; done; }\n"
         "last=\n"
         "for p in $(tree $job); do [ \"$(cat /proc/$p/comm 2>/dev/null)\" = lowbit ] && last=$p; done\n"
         "[ -n \"$last\" ] && kill -" + signal + " \"$last\"\n"
         "wait $job\n";
}

TEST_F(MpiCli, ARankThatDiesOrHangsEndsTheJob) {
  const std::string bench = kCli + " bench -m " + Model("stories5M-f32.gguf") + " -p 0 -n 200 -r 1000 -t 1";
  const std::string script = dir_.Path("signal.sh"), out = dir_.Path("stdout");
  // One rank is killed once rank 0 has loaded: mpirun stops the job; the survivor says why.
  {
    std::ofstream f(script);
    f << SignalOneRank(kMpirun + "-np 2 " + bench, "tensor parallel", "KILL", out);
  }
  Result r = Shell("sh " + script, dir_);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.code, 124) << "timed out: " << r.err;
  EXPECT_NE(r.err.find("exited on signal 9"), std::string::npos) << r.err;
  EXPECT_EQ(Lines(r.err, "of 2: stopped by the MPI launcher (another rank failed)"), 1) << r.err;
  // One rank is stopped (SIGSTOP): the other waits 3 s in a collective, says so and exits; mpirun
  // then ends the job. Open MPI sends SIGCONT before SIGTERM when it tears the job down, so the
  // stopped rank may wake in time to find its own wait past the limit and say so too (seen under a
  // loaded ctest -j2): at least one line, not exactly one.
  {
    std::ofstream f(script);
    f << SignalOneRank("LOWBIT_TP_TIMEOUT=3 " + kMpirun + "-x LOWBIT_TP_TIMEOUT -np 2 " + bench, "tensor parallel", "STOP", out);
  }
  r = Shell("sh " + script, dir_);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.code, 124) << "timed out: " << r.err;
  EXPECT_GE(Lines(r.err, "of 2: waited 3 s in"), 1) << r.err;
}

}  // namespace
}  // namespace lowbit

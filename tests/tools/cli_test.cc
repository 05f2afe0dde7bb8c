// The lowbit program's contract: exit 0 on success, 1 with a one-line error for bad input, 2 for
// usage errors; no output file left behind on failure.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "test_data.h"
#include "tools/cli_run.h"

namespace lowbit {
namespace {

using Result = testing::CliResult;
using testing::RunCli;
int Lines(const std::string& s) { return testing::CountLines(s); }

TEST(Cli, UsageErrorsExitTwo) {
  EXPECT_EQ(RunCli("").code, 2);
  EXPECT_EQ(RunCli("frobnicate").code, 2);
  EXPECT_EQ(RunCli("convert").code, 2);
  Result r = RunCli("convert x.bin -o y.gguf --outtype q4_0");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(Lines(r.out), 1) << r.out;
  EXPECT_EQ(RunCli("--help").code, 0);
  EXPECT_EQ(RunCli("info").code, 0);
  EXPECT_EQ(RunCli("--isa avx9 info").code, 2);
  Result ref = RunCli("--isa ref info");
  EXPECT_EQ(ref.code, 0);
  EXPECT_NE(ref.out.find("active       : ref"), std::string::npos) << ref.out;
}

TEST(Cli, BadInputExitsOneWithOneLine) {
  testing::TempDir dir;
  testing::WriteFileBytes(dir.Path("junk.gguf"), {'G', 'G', 'U', 'F', 3, 0, 0, 0, 1});
  Result r = RunCli("inspect " + dir.Path("junk.gguf"));
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(Lines(r.out), 1) << r.out;
  EXPECT_NE(r.out.find("truncated"), std::string::npos) << r.out;
  r = RunCli("convert " + dir.Path("junk.gguf") + " -o " + dir.Path("out.gguf") + " -q");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(Lines(r.out), 1) << r.out;
  EXPECT_FALSE(std::filesystem::exists(dir.Path("out.gguf")));
  EXPECT_EQ(dir.List().size(), 1u);
}

TEST(Cli, ConvertThenInspectJson) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  Result r = RunCli("convert " + testing::SharedPath("models/stories260K/stories260K.bin") + " --vocab " +
                 testing::SharedPath("models/stories260K/tok512.bin") + " -o " + dir.Path("m.gguf"));
  ASSERT_EQ(r.code, 0) << r.out;
  r = RunCli("inspect --json " + dir.Path("m.gguf"));
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out.substr(0, 200);
  EXPECT_EQ(j["tensor_count"], 48);
  EXPECT_EQ(j["total_elements"], 260032 + 32768);  // the shared classifier is written out
}

}  // namespace
}  // namespace lowbit

namespace lowbit {
namespace {

// Greedy generation from the CLI continues the prompt exactly as llama2.c's reference does.
TEST(Cli, RunGreedyMatchesReferenceText) {
  LOWBIT_REQUIRE_SHARED();
  Result r = RunCli("run -m " + testing::SharedPath("models/stories260K/stories260K-f32.gguf") +
                    " -p \"Once upon a time\" -n 24 --temp 0 -t 1");
  ASSERT_EQ(r.code, 0) << r.out;
  // llama2.c doc/stories260K.md: "Once upon a time, there was a little girl named Lily. She loved to play outside"
  EXPECT_EQ(r.out.rfind("Once upon a time, there was a little girl named Lily. She loved to play", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("generated 24 tokens"), std::string::npos) << r.out;
  r = RunCli("run -m " + testing::SharedPath("models/stories260K/stories260K-f32.gguf") + " -p hi --top-p 2");
  EXPECT_EQ(r.code, 2) << r.out;
  r = RunCli("run -m " + testing::SharedPath("models/stories260K/stories260K-f32.gguf") + " -p hi --mmap --no-mmap");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_EQ(Lines(r.out), 1) << r.out;
  // Mapped or read into memory, the same story; the timing line says which.
  for (const char* flag : {"--mmap", "--no-mmap"}) {
    r = RunCli("run -m " + testing::SharedPath("models/stories260K/stories260K-f32.gguf") + " -p \"Once upon a time\" -n 24 --temp 0 -t 1 " + flag);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_EQ(r.out.rfind("Once upon a time, there was a little girl named Lily. She loved to play", 0), 0u) << flag << ": " << r.out;
    EXPECT_NE(r.out.find(std::string(flag) == "--mmap" ? "(mapped)" : "(read into memory)"), std::string::npos) << r.out;
  }
}

}  // namespace
}  // namespace lowbit

namespace lowbit {
namespace {

TEST(Cli, BenchJsonHasTheAdvertisedFields) {
  LOWBIT_REQUIRE_SHARED();
  Result r = RunCli("bench --json -m " + testing::SharedPath("models/stories260K/stories260K-f32.gguf") +
                    " -p 16 -n 16 -r 2 -t 1 2>/dev/null");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  for (const char* k : {"pp", "pp_std", "tg", "tg_std", "gbps", "bandwidth_gbps", "bytes_per_token", "pp_gops", "ops_per_token", "weights"}) {
    ASSERT_TRUE(j.contains(k)) << k;
  }
  EXPECT_GT(j["tg"].get<double>(), 0);
  EXPECT_GT(j["bandwidth_gbps"].get<double>(), 0.5);
  // stories260K F32: every matrix and norm once, the classifier, one embedding row.
  EXPECT_NEAR(j["bytes_per_token"].get<double>(), 4.0 * (260032 - 32768 + 32768 + 64), 1.0);
  // 5 layers x (q 64x64, k and v 32x64, o 64x64, gate/up/down 3 x 64x172) + classifier 512x64, 2 ops each.
  EXPECT_EQ(j["ops_per_token"].get<double>(), 2.0 * (5 * (4096 + 2048 + 2048 + 4096 + 3 * 64 * 172) + 512 * 64));
  EXPECT_NEAR(j["pp_gops"].get<double>(), j["ops_per_token"].get<double>() * j["pp"].get<double>() / 1e9, 1e-9);
  r = RunCli("bench -m " + testing::SharedPath("models/stories260K/stories260K-f32.gguf") + " -p 600 -n 0");
  EXPECT_EQ(r.code, 1) << r.out;
}

}  // namespace
}  // namespace lowbit

// lowbit run / convert on a GPTQ folder through the program: it runs, it converts (saying what it
// kept exactly), and a folder whose tensors disagree with its config (bits, group size, shape, a
// missing g_idx) is one line naming the tensor or field, exit 1, and no output file.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>

#include "pipeline/quant_folder_util.h"
#include "test_data.h"
#include "tools/cli_run.h"

namespace lowbit {
namespace {

using Result = testing::CliResult;
using testing::RunCli;
int Lines(const std::string& s) { return testing::CountLines(s); }

std::string Stories5M() { return testing::SharedPath("models/stories5M/hf-f32"); }

TEST(QuantFolderCli, RunsAndConverts) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  testing::BuildQuantFolder(Stories5M(), testing::GptqSpec(4, 128, true, false), dir.Path("q"), dir.Path("ref"));
  Result run = RunCli("run -m " + dir.Path("q") + " -p 'Once upon a time' -n 8 --temp 0 -t 2");
  EXPECT_EQ(run.code, 0) << run.out;
  Result ref = RunCli("run -m " + dir.Path("ref") + " -p 'Once upon a time' -n 8 --temp 0 -t 2");
  EXPECT_EQ(ref.code, 0) << ref.out;
  Result conv = RunCli("convert -q " + dir.Path("q") + " -o " + dir.Path("q4.gguf"));
  EXPECT_EQ(conv.code, 0) << conv.out;
  EXPECT_NE(conv.out.find("quantized linears: 42 Q4_0 (exact)"), std::string::npos) << conv.out;
  EXPECT_TRUE(std::filesystem::exists(dir.Path("q4.gguf")));
  // perplexity and bench take the folder as they take a GGUF; the folder (native W4G128) and its
  // Q4_0 GGUF (the same weights) score the text alike.
  const std::string text = testing::SharedPath("data/tinystories/TinyStories-valid.hf-head.txt");
  auto ppl_of = [](const std::string& out) {
    const size_t at = out.rfind("PPL = ");
    return at == std::string::npos ? -1.0 : std::stod(out.substr(at + 6));
  };
  Result pq = RunCli("perplexity -m " + dir.Path("q") + " -f " + text + " -c 128 --chunks 2 -t 2");
  EXPECT_EQ(pq.code, 0) << pq.out;
  Result pg = RunCli("perplexity -m " + dir.Path("q4.gguf") + " -f " + text + " -c 128 --chunks 2 -t 2");
  EXPECT_EQ(pg.code, 0) << pg.out;
  EXPECT_GT(ppl_of(pq.out), 1.0) << pq.out;
  EXPECT_NEAR(ppl_of(pq.out), ppl_of(pg.out), 0.02 * ppl_of(pg.out)) << pq.out << pg.out;
  Result bench = RunCli("bench -m " + dir.Path("q") + " -p 8 -n 2 -t 1 -r 1");
  EXPECT_EQ(bench.code, 0) << bench.out;
}

void ExpectCleanFailure(const testing::TempDir& dir, const std::string& folder, const std::string& must_name) {
  for (const char* cmd : {"convert -q ", "run -n 1 -p x -m "}) {
    const bool convert = std::string(cmd).starts_with("convert");
    const std::string out = dir.Path("out.gguf");
    Result r = RunCli(std::string(cmd) + folder + (convert ? " -o " + out : ""));
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_EQ(Lines(r.out), 1) << r.out;
    EXPECT_NE(r.out.find(must_name), std::string::npos) << r.out;
    EXPECT_FALSE(std::filesystem::exists(out));
  }
  // Nothing but the two folders: no temporary file left.
  EXPECT_EQ(dir.List().size(), 2u);
}

TEST(QuantFolderCli, ConfigBitsDisagree) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  auto spec = testing::GptqSpec(4, 128, true, false);
  testing::BuildQuantFolder(Stories5M(), spec, dir.Path("q"), dir.Path("ref"));
  spec.config.bits = 8;
  testing::RewriteConfigs(Stories5M(), dir.Path("q"), spec.config);
  ExpectCleanFailure(dir, dir.Path("q"), "model.layers.0.self_attn.q_proj.");
}

TEST(QuantFolderCli, ConfigGroupSizeDisagrees) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  auto spec = testing::GptqSpec(4, 128, true, false);
  testing::BuildQuantFolder(Stories5M(), spec, dir.Path("q"), dir.Path("ref"));
  spec.config.group_size = 64;
  testing::RewriteConfigs(Stories5M(), dir.Path("q"), spec.config);
  ExpectCleanFailure(dir, dir.Path("q"), "model.layers.0.self_attn.q_proj.");
}

TEST(QuantFolderCli, MissingGIdx) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  testing::BuildQuantFolder(Stories5M(), testing::GptqSpec(4, 128, true, true), dir.Path("q"), dir.Path("ref"));
  testing::DropTensor(dir.Path("q"), "model.layers.2.mlp.up_proj.g_idx");
  ExpectCleanFailure(dir, dir.Path("q"), "model.layers.2.mlp.up_proj.g_idx");
}

TEST(QuantFolderCli, ShapeDisagreesWithConfigJson) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  auto spec = testing::GptqSpec(4, 128, true, false);
  testing::BuildQuantFolder(Stories5M(), spec, dir.Path("q"), dir.Path("ref"));
  // config.json says the FFN is 512 wide; the packed tensors are 768.
  const std::string path = dir.Path("q") + "/config.json";
  const std::vector<uint8_t> b = testing::ReadFileBytes(path);
  std::string cfg(b.begin(), b.end());
  const size_t at = cfg.find("\"intermediate_size\": 768");
  ASSERT_NE(at, std::string::npos) << cfg;
  cfg.replace(at, std::strlen("\"intermediate_size\": 768"), "\"intermediate_size\": 512");
  testing::WriteText(path, cfg);
  ExpectCleanFailure(dir, dir.Path("q"), "model.layers.0.mlp.gate_proj.");
}

TEST(QuantFolderCli, MissingQweight) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  testing::BuildQuantFolder(Stories5M(), testing::GptqSpec(4, 128, true, false), dir.Path("q"), dir.Path("ref"));
  testing::DropTensor(dir.Path("q"), "model.layers.1.self_attn.v_proj.qweight");
  ExpectCleanFailure(dir, dir.Path("q"), "model.layers.1.self_attn.v_proj.qweight");
}

}  // namespace
}  // namespace lowbit

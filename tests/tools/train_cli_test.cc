// The training commands' contract: usage errors exit 2, bad input exits 1 with one line naming the
// problem, and a successful finetune + run --lora + lora merge chain works end to end on
// stories260K (seconds).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "test_data.h"
#include "tools/cli_run.h"

namespace lowbit {
namespace {

using Result = testing::CliResult;
using testing::RunCli;
int Lines(const std::string& s) { return testing::CountLines(s); }

void ExpectBadInput(const std::string& args, const std::string& part) {
  Result r = RunCli(args);
  EXPECT_EQ(r.code, 1) << args << "\n" << r.out;
  EXPECT_NE(r.out.find(part), std::string::npos) << args << "\n" << r.out;
  EXPECT_EQ(Lines(r.out), 1) << r.out;
}

TEST(TrainCli, UsageErrorsExitTwo) {
  EXPECT_EQ(RunCli("qat -m x.gguf -o y.gguf").code, 2);  // --type or --format missing
  EXPECT_EQ(RunCli("qat -m x.gguf --type Q2_K --format gptq -o y").code, 2);  // both
  EXPECT_EQ(RunCli("qat -m x --format awq -o y").code, 2);
  EXPECT_EQ(RunCli("qat -m x --format gptq --bits 5 -o y").code, 2);
  EXPECT_EQ(RunCli("qat -m x --format gptq --sym --asym -o y").code, 2);
  EXPECT_EQ(RunCli("qat -m x.gguf --type Q2_K -o y.gguf --train t.txt --self-distill").code, 2);
  EXPECT_EQ(RunCli("qat -m x.gguf --type Q2_K -o y.gguf --loss mse").code, 2);
  EXPECT_EQ(RunCli("finetune -m x.gguf -o y.gguf").code, 2);  // --train missing
  EXPECT_EQ(RunCli("finetune -m x.gguf --train t.txt -o y.gguf --lora-rank 0").code, 2);
  EXPECT_EQ(RunCli("lora").code, 2);
  EXPECT_EQ(RunCli("lora merge -m x.gguf").code, 2);
  EXPECT_EQ(RunCli("run -m x.gguf --lora-scaled onlyone").code, 2);
}

TEST(TrainCli, BadInputExitsOne) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  const std::string f32 = testing::SharedPath("models/stories260K/stories260K-f32.gguf");
  const std::string q8 = testing::SharedPath("models/stories260K/stories260K-q8_0-mix.gguf");
  const std::string out = dir.Path("o.gguf");
  ExpectBadInput("qat -m " + f32 + " --type Q2_K -o " + out, "--train TEXT or --self-distill");
  ExpectBadInput("qat -m " + q8 + " --type Q4_0 --self-distill -c 64 -o " + out, "float weights");
  ExpectBadInput("qat -m " + f32 + " --type Q9_K --self-distill -o " + out, "unknown type");
  ExpectBadInput("qat -m " + f32 + " --type Q4_0 --self-distill --batch 6 --micro-batch 4 -o " + out, "multiple of --micro-batch");
  ExpectBadInput("qat -m " + f32 + " --type Q4_1 --pure --self-distill --learn-scales -c 64 -o " + out, "free block scales");
  ExpectBadInput("qat -m " + f32 + " --format gptq --bits 2 --group-size 64 --self-distill -o " + dir.Path("dir"), "Hugging Face folder");
  ExpectBadInput("finetune -m " + q8 + " --train " + dir.Path("missing.txt") + " -o " + out, "missing.txt");
  ExpectBadInput("finetune -m " + q8 + " --train " + f32 + " --targets q,attn -o " + out, "unknown projection 'attn'");
  ExpectBadInput("run -m " + q8 + " -n 1 --lora " + dir.Path("none.gguf"), "none.gguf");
  ExpectBadInput("run -m " + q8 + " -n 1 --lora-scaled " + dir.Path("none.gguf") + " x", "must be a number");
  ExpectBadInput("perplexity -m " + q8 + " -f " + f32 + " --lora " + f32, "not 'adapter'");
  ExpectBadInput("lora merge -m " + q8 + " --lora " + q8 + " -o " + out, "not 'adapter'");
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST(TrainCli, FinetuneThenRunAndMerge) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  const std::string base = testing::SharedPath("models/stories260K/stories260K-q8_0-mix.gguf");
  {
    std::ofstream t(dir.Path("t.txt"));
    for (int i = 0; i < 40; ++i) t << "Tom has a red ball and a blue kite. ";
  }
  Result r = RunCli("finetune -m " + base + " --train " + dir.Path("t.txt") + " -o " + dir.Path("a.gguf") +
                    " --steps 4 --batch 2 --micro-batch 2 -c 64 --lora-rank 2 -t 2 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\"steps\": 4"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("step 4/4"), std::string::npos) << r.out;
  r = RunCli("run -m " + base + " --lora " + dir.Path("a.gguf") + " --lora-scaled " + dir.Path("a.gguf") + " 0.5 -p Tom -n 8 --temp 0");
  EXPECT_EQ(r.code, 0) << r.out;
  r = RunCli("lora merge -m " + base + " --lora " + dir.Path("a.gguf") + " -o " + dir.Path("m.gguf"));
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("35 tensors merged"), std::string::npos) << r.out;
  r = RunCli("lora convert " + dir.Path("a.gguf") + " -m " + base + " -o " + dir.Path("peft"));
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(std::filesystem::exists(dir.Path("peft/adapter_config.json")));
}

}  // namespace
}  // namespace lowbit

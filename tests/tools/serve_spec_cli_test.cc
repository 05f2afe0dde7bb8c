// `lowbit serve` with speculative decoding flags: a draft model with another vocabulary is refused
// at start-up with one line naming both files and both vocabularies (exit 1); --draft-min above
// --draft-max is refused; --lookup with --model-draft is a usage error.
#include <gtest/gtest.h>

#include "lowbit/pipeline/synth.h"
#include "test_data.h"
#include "tools/cli_run.h"

namespace lowbit {
namespace {

using testing::RunCli;

TEST(ServeSpecCli, DraftWithAnotherVocabularyIsOneLine) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  SynthOptions so;
  so.shape = "tiny";
  so.output = dir.Path("tiny.gguf");
  so.threads = 1;
  ASSERT_TRUE(Synthesize(so).ok());
  const std::string model = testing::SharedPath("models/stories5M/stories5M-f32.gguf");
  const auto r = RunCli("serve -m " + model + " --host 127.0.0.1 --port 0 --model-draft " + so.output);
  EXPECT_EQ(r.code, 1) << r.out;
  const size_t at = r.out.find("error:");
  ASSERT_NE(at, std::string::npos) << r.out;
  const std::string line = r.out.substr(at);
  EXPECT_EQ(testing::CountLines(line), 1) << r.out;
  EXPECT_NE(line.find("tiny.gguf"), std::string::npos) << line;
  EXPECT_NE(line.find("stories5M-f32.gguf"), std::string::npos) << line;
  EXPECT_NE(line.find("512 tokens"), std::string::npos) << line;
  EXPECT_NE(line.find("same vocabulary"), std::string::npos) << line;
}

TEST(ServeSpecCli, BadDraftFlags) {
  LOWBIT_REQUIRE_SHARED();
  const std::string model = testing::SharedPath("models/stories5M/stories5M-f32.gguf");
  auto r = RunCli("serve -m " + model + " --host 127.0.0.1 --port 0 --lookup --draft-min 5 --draft-max 3");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("--draft-min 5 is above --draft-max 3"), std::string::npos) << r.out;
  r = RunCli("serve -m " + model + " --host 127.0.0.1 --port 0 --lookup --model-draft " + model);
  EXPECT_EQ(r.code, 2) << r.out;
}

}  // namespace
}  // namespace lowbit

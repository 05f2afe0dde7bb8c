// `lowbit convert` and `lowbit perplexity` on legacy llama.cpp files, as a user runs them: exit
// codes, the lines on stderr, no output file after a failure.
#include <gtest/gtest.h>

#include <filesystem>

#include "../formats/ggml_legacy_writer.h"
#include "cli_run.h"
#include "test_data.h"

namespace lowbit {
namespace {

std::string WriteLegacy(const testing::TempDir& dir, const std::string& gguf, GgmlLegacyFormat format, uint32_t version,
                        size_t cut = 0) {
  auto g = GgufFile::Open(testing::SharedPath(gguf));
  EXPECT_TRUE(g.ok());
  std::vector<uint8_t> bytes = testing::LegacyFileBytes(testing::LegacyFileFromGguf(*g, format, version));
  bytes.resize(bytes.size() - cut);
  const std::string path = dir.Path("old.bin");
  testing::WriteFileBytes(path, bytes);
  return path;
}

TEST(LegacyCli, ConvertsAndRunsAnOldFileAndFailsCleanlyOnABrokenOne) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  const std::string old = WriteLegacy(dir, "models/stories260K/stories260K-q8_0-mix.gguf", GgmlLegacyFormat::kGgjt, 2);
  const std::string out = dir.Path("new.gguf");
  auto r = testing::RunCli("convert " + old + " -o " + out + " --ctx 512 --rms-eps 1e-5 -q");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, "lowbit convert: wrote " + out + "\n");
  auto ref = testing::RunCli("perplexity -m " + testing::SharedPath("models/stories260K/stories260K-q8_0-mix.gguf") + " -f " +
                             testing::SharedPath("data/tinystories/TinyStoriesV2-GPT4-valid.first100.txt") +
                             " -c 128 --chunks 3 -t 2 --json");
  auto got = testing::RunCli("perplexity -m " + out + " -f " +
                             testing::SharedPath("data/tinystories/TinyStoriesV2-GPT4-valid.first100.txt") +
                             " -c 128 --chunks 3 -t 2 --json");
  ASSERT_EQ(ref.code, 0) << ref.out;
  ASSERT_EQ(got.code, 0) << got.out;
  auto ppl = [](const std::string& s) { return s.substr(s.find("\"ppl\""), 30); };
  EXPECT_EQ(ppl(got.out), ppl(ref.out));
  // The old file directly (run/perplexity read it as convert does).
  auto direct = testing::RunCli("perplexity -m " + old + " -f " +
                                testing::SharedPath("data/tinystories/TinyStoriesV2-GPT4-valid.first100.txt") +
                                " -c 128 --chunks 3 -t 2 --json");
  ASSERT_EQ(direct.code, 0) << direct.out;
  std::filesystem::remove(out);
  std::filesystem::remove(old);

  const std::string cut = WriteLegacy(dir, "models/stories260K/stories260K-f32.gguf", GgmlLegacyFormat::kGgmf, 1, 100);
  r = testing::RunCli("convert " + cut + " -o " + out + " -q");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_EQ(testing::CountLines(r.out), 1) << r.out;
  EXPECT_NE(r.out.find("lowbit convert: error: " + cut + ": at byte"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tensor 'layers.4.ffn_norm.weight'"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_EQ(dir.List().size(), 1u);
}

}  // namespace
}  // namespace lowbit

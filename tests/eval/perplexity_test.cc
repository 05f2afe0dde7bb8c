// Perplexity reproduces llama.cpp's figures (../shared/models/README.md) with the same text, context
// and chunking: stories5M F32 to 4 significant digits; every quantized stories5M and stories260K
// file llama.cpp made within 0.3%.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <string>

#include "lowbit/eval/perplexity.h"
#include "lowbit/formats/gguf_vocab.h"
#include "lowbit/formats/hf.h"
#include "test_data.h"

namespace lowbit {
namespace {

Expected<PerplexityResult> RunPerplexity(const std::string& model_path, int64_t ctx, int64_t chunks = -1) {
  LOWBIT_ASSIGN_OR_RETURN(GgufFile g, GgufFile::Open(testing::SharedPath(model_path)));
  LOWBIT_ASSIGN_OR_RETURN(LlamaModel m, LlamaModel::Load(g));
  LOWBIT_ASSIGN_OR_RETURN(Vocab v, VocabFromGguf(g));
  LOWBIT_ASSIGN_OR_RETURN(std::string text,
                          ReadTextFile(testing::SharedPath("data/tinystories/TinyStoriesV2-GPT4-valid.first100.txt")));
  return Perplexity(m, v, text, {ctx, chunks, 2});
}

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

TEST(Perplexity, Stories5MF32MatchesLlamaCppToFourDigits) {
  LOWBIT_REQUIRE_SHARED();
  if (kSanitized) GTEST_SKIP() << "40k-token forward run skipped under sanitizers (too slow); the release suite runs it";
  auto r = RunPerplexity("models/stories5M/stories5M-f32.gguf", 256);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->n_tokens, 40710);  // llama.cpp's token count for this text
  EXPECT_EQ(r->n_chunks, 159);
  EXPECT_NEAR(r->ppl, 6.2446, 0.0005) << "llama.cpp: 6.2446 +/- 0.1064";
  EXPECT_NEAR(r->ppl_err, 0.1064, 0.0005);
}

// llama.cpp's own quantized files (../shared/models/README.md, ctx 256, 159 chunks): lowbit runs
// them as llama.cpp does, activations quantized to Q8_0/Q8_1/Q8_K inside the integer dot products.
struct FileCase {
  const char* file;
  double want;
  double tol;
};
class LlamaCppFiles : public ::testing::TestWithParam<FileCase> {};

TEST_P(LlamaCppFiles, PerplexityWithinPointThreePercent) {
  LOWBIT_REQUIRE_SHARED();
  const FileCase& c = GetParam();
  auto r = RunPerplexity(c.file, 256, kSanitized ? 4 : -1);
  ASSERT_TRUE(r.ok()) << r.status().message();
  if (kSanitized) return;
  EXPECT_EQ(r->n_chunks, 159);
  EXPECT_NEAR(r->ppl, c.want, c.tol) << c.file << ": llama.cpp " << c.want;
}

INSTANTIATE_TEST_SUITE_P(
    Files, LlamaCppFiles,
    ::testing::Values(FileCase{"models/stories260K/stories260K-f32.gguf", 6.6789, 0.0005},
                      FileCase{"models/stories260K/stories260K-f16.gguf", 6.6787, 6.6787 * 0.003},
                      FileCase{"models/stories260K/stories260K-q8_0-mix.gguf", 6.7021, 6.7021 * 0.003},
                      FileCase{"models/stories260K/stories260K-q5_0-mix.gguf", 6.7417, 6.7417 * 0.003},
                      FileCase{"models/stories5M/llamacpp/stories5M-q8_0.gguf", 6.2452, 6.2452 * 0.003},
                      FileCase{"models/stories5M/llamacpp/stories5M-q6_k.gguf", 6.2473, 6.2473 * 0.003},
                      FileCase{"models/stories5M/llamacpp/stories5M-q5_k_m.gguf", 6.2417, 6.2417 * 0.003},
                      FileCase{"models/stories5M/llamacpp/stories5M-q4_k_m.gguf", 6.2319, 6.2319 * 0.003},
                      FileCase{"models/stories5M/llamacpp/stories5M-q4_0.gguf", 6.2449, 6.2449 * 0.003},
                      FileCase{"models/stories5M/llamacpp/stories5M-q3_k_m.gguf", 6.2892, 6.2892 * 0.003},
                      FileCase{"models/stories5M/llamacpp/stories5M-q2_k.gguf", 6.4911, 6.4911 * 0.003}),
    [](const auto& p) {
      std::string n = p.param.file;
      n = n.substr(n.rfind('/') + 1);
      for (char& ch : n) ch = std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
      return n;
    });

TEST(Perplexity, TooShortTextIsAnError) {
  LOWBIT_REQUIRE_SHARED();
  auto r = RunPerplexity("models/stories260K/stories260K-f32.gguf", 1 << 20);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("fewer than one context"), std::string::npos);
}

}  // namespace
}  // namespace lowbit

namespace lowbit {
namespace {

TEST(Perplexity, KlDivergenceAgainstSavedDistributions) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  auto run = [&](const std::string& model, PerplexityOptions o) -> Expected<PerplexityResult> {
    LOWBIT_ASSIGN_OR_RETURN(GgufFile g, GgufFile::Open(testing::SharedPath(model)));
    LOWBIT_ASSIGN_OR_RETURN(LlamaModel m, LlamaModel::Load(g));
    LOWBIT_ASSIGN_OR_RETURN(Vocab v, VocabFromGguf(g));
    LOWBIT_ASSIGN_OR_RETURN(std::string text,
                            ReadTextFile(testing::SharedPath("data/tinystories/TinyStoriesV2-GPT4-valid.first100.txt")));
    return Perplexity(m, v, text, o);
  };
  const std::string f32 = "models/stories260K/stories260K-f32.gguf";
  PerplexityOptions save{256, 4, 1, dir.Path("base.logp"), ""};
  auto base = run(f32, save);
  ASSERT_TRUE(base.ok()) << base.status().message();
  auto self = run(f32, {256, 4, 1, "", dir.Path("base.logp")});
  ASSERT_TRUE(self.ok()) << self.status().message();
  ASSERT_TRUE(self->has_kl);
  EXPECT_EQ(self->kl.mean, 0.0);
  EXPECT_EQ(self->kl.top1_agreement, 1.0);
  EXPECT_NEAR(self->kl.ppl_ratio, 1.0, 1e-6);
  EXPECT_NEAR(self->kl.ppl_base, base->ppl, 1e-4 * base->ppl);
  auto q = run("models/stories260K/stories260K-q5_0-mix.gguf", {256, 4, 1, "", dir.Path("base.logp")});
  ASSERT_TRUE(q.ok()) << q.status().message();
  EXPECT_GT(q->kl.mean, 0.0);
  EXPECT_LT(q->kl.mean, 0.2);
  EXPECT_GT(q->kl.top1_agreement, 0.8);
  EXPECT_LE(q->kl.median, q->kl.max);
  auto mismatch = run(f32, {256, 3, 1, "", dir.Path("base.logp")});
  ASSERT_FALSE(mismatch.ok());
  EXPECT_NE(mismatch.status().message().find("4 chunks"), std::string::npos) << mismatch.status().message();
}

}  // namespace
}  // namespace lowbit

namespace lowbit {
namespace {

TEST(Perplexity, F16KvCacheChangesLittle) {
  LOWBIT_REQUIRE_SHARED();
  auto run = [&](bool f16) -> Expected<PerplexityResult> {
    LOWBIT_ASSIGN_OR_RETURN(GgufFile g, GgufFile::Open(testing::SharedPath("models/stories5M/stories5M-f32.gguf")));
    LOWBIT_ASSIGN_OR_RETURN(LlamaModel m, LlamaModel::Load(g));
    LOWBIT_ASSIGN_OR_RETURN(Vocab v, VocabFromGguf(g));
    LOWBIT_ASSIGN_OR_RETURN(std::string text,
                            ReadTextFile(testing::SharedPath("data/tinystories/TinyStoriesV2-GPT4-valid.first100.txt")));
    PerplexityOptions o{256, 8, 2, "", ""};
    o.kv_f16 = f16;
    return Perplexity(m, v, text, o);
  };
  auto a = run(false), b = run(true);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->ppl, b->ppl);                     // the cache really is F16
  EXPECT_NEAR(b->ppl, a->ppl, 1e-3 * a->ppl);    // and costs < 0.1% perplexity
}

}  // namespace
}  // namespace lowbit

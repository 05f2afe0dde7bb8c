// The reference forward reproduces llama2.c's outputs for stories260K
// (../shared/models/stories260K/reference_stories260K.json): greedy token ids exactly, per-token
// log-probs within 1e-4, top logits.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lowbit/model/llama.h"
#include "test_data.h"

namespace lowbit {
namespace {

nlohmann::json Reference() {
  std::ifstream in(testing::SharedPath("models/stories260K/reference_stories260K.json"));
  return nlohmann::json::parse(in);
}

int Argmax(const float* v, int64_t n) { return static_cast<int>(std::max_element(v, v + n) - v); }

double LogSoftmaxAt(const float* v, int64_t n, int idx) {
  const float mx = *std::max_element(v, v + n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(v[i]) - mx);
  return static_cast<double>(v[idx]) - mx - std::log(sum);
}

class Stories260K : public ::testing::TestWithParam<const char*> {};

TEST_P(Stories260K, GreedyIdsAndLogprobsMatchLlama2c) {
  LOWBIT_REQUIRE_SHARED();
  auto g = GgufFile::Open(testing::SharedPath(std::string("models/stories260K/") + GetParam()));
  ASSERT_TRUE(g.ok()) << g.status().message();
  auto model = LlamaModel::Load(*g);
  ASSERT_TRUE(model.ok()) << model.status().message();
  const nlohmann::json ref = Reference();
  const bool exact = std::string(GetParam()) == "stories260K-f32.gguf";
  for (const auto& case_ : ref["greedy"]) {
    LlamaSession s(*model, 512, 2);
    std::vector<int> prompt = case_["prompt_ids"].get<std::vector<int>>();
    const float* logits = nullptr;
    int64_t pos = 0;
    for (int t : prompt) logits = s.Forward(t, pos++);
    std::vector<int> got;
    for (size_t i = 0; i < case_["greedy_ids"].size(); ++i) {
      const int next = Argmax(logits, model->config().n_vocab);
      got.push_back(next);
      logits = s.Forward(next, pos++);
    }
    const std::vector<int> want = case_["greedy_ids"].get<std::vector<int>>();
    if (exact) {
      EXPECT_EQ(got, want) << "prompt '" << case_["prompt"] << "'";
    } else {  // a quantized model follows the same story for a while
      size_t same = 0;
      while (same < got.size() && got[same] == want[same]) ++same;
      EXPECT_GE(same, 8u) << GetParam() << " prompt '" << case_["prompt"] << "'";
    }
  }
  if (!exact) return;
  LlamaSession s(*model, 512, 1);
  const std::vector<int> ids = ref["logprob_ids"].get<std::vector<int>>();
  const std::vector<double> want = ref["logprobs"].get<std::vector<double>>();
  double max_err = 0, nll = 0;
  for (size_t i = 0; i + 1 < ids.size(); ++i) {
    const float* logits = s.Forward(ids[i], static_cast<int64_t>(i));
    const double lp = LogSoftmaxAt(logits, model->config().n_vocab, ids[i + 1]);
    max_err = std::max(max_err, std::fabs(lp - want[i]));
    nll -= lp;
    if (i < 2) {
      for (const auto& pair : ref["top5_logits_pos0_pos1"][i]) {
        EXPECT_NEAR(logits[pair[0].get<int>()], pair[1].get<double>(), 1e-4);
      }
    }
  }
  EXPECT_LT(max_err, 1e-4);
  EXPECT_NEAR(nll / want.size(), ref["mean_nll_64"].get<double>(), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Files, Stories260K,
                         ::testing::Values("stories260K-f32.gguf", "stories260K-f16.gguf",
                                           "stories260K-q8_0-mix.gguf", "stories260K-q5_0-mix.gguf"),
                         [](const auto& p) {
                           std::string n = p.param;
                           for (char& c : n) if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

// The file read into memory (lowbit's tools do it by default where huge pages are available) gives
// the mapped file's logits bit for bit, on one thread and two.
TEST(ModelResidency, ReadIntoMemoryGivesTheMappedFilesLogits) {
  LOWBIT_REQUIRE_SHARED();
  const std::string path = testing::SharedPath("models/stories260K/stories260K-q8_0-mix.gguf");
  auto mapped = GgufFile::Open(path, Residency::kMapped);
  auto read = GgufFile::Open(path, Residency::kInMemory);
  ASSERT_TRUE(mapped.ok() && read.ok());
  EXPECT_FALSE(mapped->in_memory());
  EXPECT_TRUE(read->in_memory());
  auto ma = LlamaModel::Load(*mapped);
  auto mb = LlamaModel::Load(*read);
  ASSERT_TRUE(ma.ok() && mb.ok());
  const int64_t nv = ma->config().n_vocab;
  for (int threads : {1, 2}) {
    LlamaSession a(*ma, 64, threads), b(*mb, 64, threads);
    int tok = 1;
    for (int64_t pos = 0; pos < 16; ++pos) {
      const float* pa = a.Forward(tok, pos);
      const std::vector<float> want(pa, pa + nv);
      const float* pb = b.Forward(tok, pos);
      for (int64_t i = 0; i < nv; ++i) ASSERT_EQ(pb[i], want[i]) << threads << " threads, position " << pos << ", logit " << i;
      tok = Argmax(want.data(), nv);
    }
  }
}

}  // namespace
}  // namespace lowbit

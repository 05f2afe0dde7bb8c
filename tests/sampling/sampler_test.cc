#include <gtest/gtest.h>

#include <map>

#include "lowbit/sampling/sampler.h"

namespace lowbit {
namespace {

TEST(Sampler, GreedyAndTopKOneAreArgmax) {
  std::vector<float> logits = {0.1f, 2.0f, -1.0f, 1.9f};
  SamplerParams greedy;
  greedy.temp = 0;
  EXPECT_EQ(Sampler(greedy, 4).Sample(logits.data(), {}), 1);
  SamplerParams k1;
  k1.top_k = 1;
  k1.seed = 9;
  for (int i = 0; i < 20; ++i) {
    std::vector<float> l = logits;
    EXPECT_EQ(Sampler(k1, 4).Sample(l.data(), {}), 1);
  }
}

TEST(Sampler, SeedReproducesAndDistributionFollowsSoftmax) {
  SamplerParams p;
  p.temp = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0;
  p.seed = 42;
  const std::vector<float> logits = {0.0f, std::log(3.0f)};  // probabilities 1/4, 3/4
  Sampler a(p, 2), b(p, 2);
  std::map<int, int> counts;
  for (int i = 0; i < 20000; ++i) {
    std::vector<float> la = logits, lb = logits;
    const int ta = a.Sample(la.data(), {});
    ASSERT_EQ(ta, b.Sample(lb.data(), {}));
    ++counts[ta];
  }
  EXPECT_NEAR(counts[1] / 20000.0, 0.75, 0.015);
}

TEST(Sampler, TopPAndMinPCut) {
  SamplerParams p;
  p.temp = 1.0f;
  p.top_k = 0;
  p.top_p = 0.5f;  // the first token alone holds > 50%
  p.min_p = 0;
  const std::vector<float> logits = {3.0f, 0.0f, 0.0f, 0.0f};
  Sampler s(p, 4);
  for (int i = 0; i < 200; ++i) {
    std::vector<float> l = logits;
    ASSERT_EQ(s.Sample(l.data(), {}), 0);
  }
  SamplerParams m;
  m.temp = 1.0f;
  m.top_k = 0;
  m.top_p = 1.0f;
  m.min_p = 0.5f;  // tokens below half the best probability are dropped
  Sampler sm(m, 3);
  for (int i = 0; i < 200; ++i) {
    std::vector<float> l = {1.0f, 1.0f - 0.1f, -2.0f};
    ASSERT_NE(sm.Sample(l.data(), {}), 2);
  }
}

TEST(Sampler, RepetitionPenaltyAppliesOncePerToken) {
  SamplerParams p;
  p.temp = 0;
  p.repeat_penalty = 2.0f;
  std::vector<float> logits = {1.0f, 1.5f, -1.0f};
  // Token 1 was seen twice: 1.5 / 2 = 0.75 (not 0.375), so token 0 wins.
  EXPECT_EQ(Sampler(p, 3).Sample(logits.data(), {1, 1}), 0);
  EXPECT_FLOAT_EQ(logits[1], 0.75f);
  std::vector<float> neg = {-1.0f, -0.6f};
  Sampler(p, 2).Sample(neg.data(), {1});
  EXPECT_FLOAT_EQ(neg[1], -1.2f);
}

}  // namespace
}  // namespace lowbit

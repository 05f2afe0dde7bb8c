// Sampler::AcceptOrResample, the rejection rule of speculative sampling, checked statistically: with
// the draft drawn from q and the rule applied, the output must be distributed as p. A chi-square
// statistic over many trials (fixed seeds) must stay below a bound that the wrong rules (the
// negative controls below, fed to the same check) exceed by far.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "lowbit/sampling/sampler.h"

namespace lowbit {
namespace {

constexpr int kVocab = 6;
constexpr int kTrials = 200000;

SamplerParams Params(uint64_t seed) {
  SamplerParams p;
  p.temp = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0;
  p.seed = seed;
  return p;
}

// Pearson's chi-square of the counts against kTrials * p (cells with p = 0 must stay empty).
double ChiSquare(const std::vector<int64_t>& counts, const std::vector<double>& p) {
  double chi = 0;
  for (int i = 0; i < kVocab; ++i) {
    if (p[i] == 0) {
      if (counts[i] > 0) return 1e30;
      continue;
    }
    const double e = kTrials * p[i];
    chi += (counts[i] - e) * (counts[i] - e) / e;
  }
  return chi;
}

TokenDist AsDist(const std::vector<double>& v) {
  TokenDist d;
  for (int i = 0; i < kVocab; ++i) {
    if (v[i] > 0) d.emplace_back(i, static_cast<float>(v[i]));
  }
  return d;
}

// Tokens produced by `rule` (draft drawn from q with its own generator) over kTrials.
using Rule = std::function<int32_t(Sampler&, const TokenDist& p, const TokenDist& q, int32_t draft)>;
std::vector<int64_t> Trials(const std::vector<double>& p, const std::vector<double>& q, const Rule& rule, bool point_mass_draft = false,
                         int32_t point = 0) {
  Sampler s(Params(7), kVocab);
  std::mt19937_64 draft_rng(11);
  std::discrete_distribution<int32_t> from_q(q.begin(), q.end());
  const TokenDist pd = AsDist(p), qd = AsDist(q);
  std::vector<int64_t> counts(kVocab, 0);
  for (int i = 0; i < kTrials; ++i) {
    const int32_t draft = point_mass_draft ? point : from_q(draft_rng);
    ++counts[static_cast<size_t>(rule(s, pd, qd, draft))];
  }
  return counts;
}

int32_t Correct(Sampler& s, const TokenDist& p, const TokenDist& q, int32_t draft) {
  bool accepted = false;
  return s.AcceptOrResample(p, q, draft, &accepted);
}

// Wrong rule 1: on rejection, draw from p itself (not from max(0, p - q)).
int32_t ResampleFromP(Sampler& s, const TokenDist& p, const TokenDist& q, int32_t draft) {
  bool accepted = false;
  const int32_t t = s.AcceptOrResample(p, q, draft, &accepted);
  return accepted ? t : s.Draw(p);
}

// Wrong rule 2: accept whenever p(draft) >= q(draft), else draw from p (a threshold, not a coin).
int32_t Threshold(Sampler& s, const TokenDist& p, const TokenDist& q, int32_t draft) {
  double pd = 0, qd = 0;
  for (const auto& [t, pr] : p) pd += t == draft ? pr : 0;
  for (const auto& [t, pr] : q) qd += t == draft ? pr : 0;
  return pd >= qd ? draft : s.Draw(p);
}

// 5 degrees of freedom: P(chi2 > 30) ~ 1.5e-5. The wrong rules reach thousands.
constexpr double kBound = 30.0;

const std::vector<double> kP = {0.40, 0.25, 0.15, 0.10, 0.06, 0.04};
const std::vector<double> kQ = {0.05, 0.10, 0.50, 0.05, 0.20, 0.10};

TEST(SpeculativeAccept, OutputFollowsTargetForAnyDraftDistribution) {
  EXPECT_LT(ChiSquare(Trials(kP, kQ, Correct), kP), kBound);
  EXPECT_LT(ChiSquare(Trials(kQ, kP, Correct), kQ), kBound);
  EXPECT_LT(ChiSquare(Trials(kP, kP, Correct), kP), kBound);  // q = p: always accepted
  // Supports that differ: q puts mass where p has none, p where q has none.
  const std::vector<double> p2 = {0.5, 0.5, 0, 0, 0, 0}, q2 = {0, 0.2, 0.4, 0.4, 0, 0};
  EXPECT_LT(ChiSquare(Trials(p2, q2, Correct), p2), kBound);
}

TEST(SpeculativeAccept, PointMassDraftsFollowTarget) {
  // Prompt lookup: q is a point mass on the drafted token, which may be likely or impossible under p.
  const std::vector<double> p3 = {0.4, 0.25, 0.15, 0.1, 0.1, 0};
  for (int32_t point : {0, 2, 5}) {
    std::vector<double> q(kVocab, 0.0);
    q[static_cast<size_t>(point)] = 1.0;
    EXPECT_LT(ChiSquare(Trials(p3, q, Correct, true, point), p3), kBound) << "draft " << point;
  }
}

TEST(SpeculativeAccept, TheCheckRejectsWrongRules) {
  // Negative controls: the same check fails rules that are not the rejection rule.
  EXPECT_GT(ChiSquare(Trials(kP, kQ, ResampleFromP), kP), 100 * kBound);
  EXPECT_GT(ChiSquare(Trials(kP, kQ, Threshold), kP), 100 * kBound);
  // Plain drafting (always accepting the draft) outputs q.
  EXPECT_GT(ChiSquare(Trials(kP, kQ, [](Sampler&, const TokenDist&, const TokenDist&, int32_t d) { return d; }), kP), 100 * kBound);
}

TEST(SpeculativeAccept, GreedyIsArgmaxAgreement) {
  SamplerParams g = Params(1);
  g.temp = 0;
  Sampler s(g, kVocab);
  std::vector<float> logits = {0.1f, 2.0f, -1.0f, 1.9f, 0, 0};
  TokenDist p;
  s.Distribution(logits.data(), {}, &p);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].first, 1);
  bool accepted = false;
  EXPECT_EQ(s.AcceptOrResample(p, {{1, 1.0f}}, 1, &accepted), 1);
  EXPECT_TRUE(accepted);
  EXPECT_EQ(s.AcceptOrResample(p, {{3, 1.0f}}, 3, &accepted), 1);
  EXPECT_FALSE(accepted);
}

TEST(SpeculativeAccept, DistributionIsWhatSampleDraws) {
  // Distribution's probabilities are those Sample draws with (top-k, top-p, min-p, temperature).
  SamplerParams sp = Params(5);
  sp.top_k = 4;
  sp.top_p = 0.9f;
  sp.temp = 0.7f;
  const std::vector<float> logits = {0.3f, 1.5f, -0.5f, 1.0f, 0.9f, -2.0f};
  Sampler a(sp, kVocab);
  std::vector<float> l = logits;
  TokenDist d;
  a.Distribution(l.data(), {}, &d);
  std::vector<double> p(kVocab, 0.0);
  double sum = 0;
  for (const auto& [t, pr] : d) {
    p[static_cast<size_t>(t)] = pr;
    sum += pr;
  }
  EXPECT_NEAR(sum, 1.0, 1e-6);
  Sampler b(sp, kVocab);
  std::vector<int64_t> counts(kVocab, 0);
  for (int i = 0; i < kTrials; ++i) {
    std::vector<float> li = logits;
    ++counts[static_cast<size_t>(b.Sample(li.data(), {}))];
  }
  EXPECT_LT(ChiSquare(counts, p), kBound);
}

}  // namespace
}  // namespace lowbit

// The kernel-table entries the model families beyond llama use (issue 25): the tanh GELU of GeGLU
// against its textbook formula in double, and soft-capped attention against the plain attention (a
// huge cap changes nothing; a small one bounds the scores) and against a direct computation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "lowbit/base/cpu_features.h"
#include "lowbit/kernels/dot.h"
#include "lowbit/kernels/softmax.h"

namespace lowbit {
namespace {

TEST(ArchOps, GeluTanhMatchesTheFormula) {
  double worst = 0;
  for (float x = -12.0f; x <= 12.0f; x += 0.001953125f) {
    const double xd = x;
    // 0.5 x (1 + tanh(u)) written as x / (1 + exp(-2u)): the same function without 1 + tanh's
    // cancellation for negative x, so the double reference keeps its precision there.
    const double u = 0.7978845608028654 * (xd + 0.044715 * xd * xd * xd);
    const double want = xd / (1.0 + std::exp(-2.0 * u));
    if (std::fabs(want) < 1e-30) continue;
    worst = std::max(worst, std::fabs(softmax::GeluTanh(x) - want) / std::fabs(want));
  }
  // u is computed in float: exp(-2u) inherits |2u| * 2^-24 relative error (|2u| up to ~87 where the
  // result is not yet denormal), 5e-6; measured 1.1e-5. ggml's fp16 table is coarser (~1e-3).
  EXPECT_LT(worst, 3e-5);
  EXPECT_EQ(softmax::GeluTanh(0.0f), 0.0f);
  EXPECT_EQ(softmax::GeluTanh(100.0f), 100.0f);
  EXPECT_LT(std::fabs(softmax::GeluTanh(-100.0f)), 1e-30f);
  EXPECT_TRUE(std::isnan(softmax::GeluTanh(NAN)));
}

TEST(ArchOps, GeGluOfEveryTableIsGeluTimesUp) {
  for (Isa isa : {Isa::kRef, Isa::kAvx2, Isa::kAvx512}) {
    const DotKernels& k = DotKernelsFor(isa);
    ASSERT_NE(k.geglu, nullptr);
    std::vector<float> g = {-3.0f, -0.5f, 0.0f, 0.25f, 2.0f, 9.0f}, u = {1.0f, 2.0f, 3.0f, -1.0f, 0.5f, -2.0f}, out(g.size());
    k.geglu(g.data(), u.data(), out.data(), static_cast<int64_t>(g.size()));
    for (size_t i = 0; i < g.size(); ++i) EXPECT_EQ(out[i], softmax::GeluTanh(g[i]) * u[i]);
  }
}

TEST(ArchOps, CappedAttentionIsTheSoftmaxOfCappedScores) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  const int64_t hd = 16, n_pos = 11, n_q = 2;
  std::vector<float> q(n_q * hd), k(n_pos * hd), v(n_pos * hd);
  for (auto* a : {&q, &k, &v}) {
    for (float& x : *a) x = nd(rng);
  }
  const auto* kb = reinterpret_cast<const uint8_t*>(k.data());
  const auto* vb = reinterpret_cast<const uint8_t*>(v.data());
  const DotKernels& t = DotKernelsFor(Isa::kRef);
  const float scale = 0.25f;
  std::vector<float> att(n_q * n_pos), plain(n_q * hd), huge(n_q * hd), capped(n_q * hd);
  t.attend[0](q.data(), n_q, kb, vb, hd * 4, n_pos, hd, scale, att.data(), plain.data());
  t.attend_capped[0](q.data(), n_q, kb, vb, hd * 4, n_pos, hd, scale, 1e30f, att.data(), huge.data());
  for (int64_t i = 0; i < n_q * hd; ++i) EXPECT_NEAR(huge[i], plain[i], 1e-5f * (1 + std::fabs(plain[i])));
  const float cap = 2.0f;
  t.attend_capped[0](q.data(), n_q, kb, vb, hd * 4, n_pos, hd, scale, cap, att.data(), capped.data());
  for (int64_t g = 0; g < n_q; ++g) {
    std::vector<double> s(n_pos);
    double mx = -1e300, sum = 0;
    for (int64_t p = 0; p < n_pos; ++p) {
      double d = 0;
      for (int64_t i = 0; i < hd; ++i) d += static_cast<double>(q[g * hd + i]) * k[p * hd + i];
      s[p] = cap * std::tanh(d * scale / cap);
      mx = std::max(mx, s[p]);
    }
    for (double& x : s) sum += (x = std::exp(x - mx));
    for (int64_t i = 0; i < hd; ++i) {
      double want = 0;
      for (int64_t p = 0; p < n_pos; ++p) want += s[p] / sum * v[p * hd + i];
      EXPECT_NEAR(capped[g * hd + i], want, 1e-4 * (1 + std::fabs(want))) << "query " << g << " element " << i;
    }
  }
}

}  // namespace
}  // namespace lowbit

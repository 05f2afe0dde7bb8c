// AWQ's array pieces (quant/awq.h) against hand-worked values and a direct transcription of
// AutoAWQ's _compute_best_clip; the clip search finds the known answer when an outlier weight
// never meets a nonzero input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "lowbit/base/thread_pool.h"
#include "lowbit/quant/awq.h"

namespace lowbit {
namespace {

inline size_t Z(int64_t v) { return static_cast<size_t>(v); }

LinearQuantSpec AwqSpec(int bits, int64_t group) {
  LinearQuantSpec s;
  s.bits = bits;
  s.group_size = group;
  s.convention = QuantConvention::kAwq;
  s.scale_rounding = ScaleRounding::kNone;
  return s;
}

TEST(Awq, Statistics) {
  AwqActStats st(3);
  const float x[6] = {1, -2, 3, -3, 0, 1};
  st.AddBatch(x, 1, 3);
  st.AddBatch(x + 3, 1, 3);
  EXPECT_EQ(st.count(), 2);
  EXPECT_EQ(st.Mean(), (std::vector<float>{2.0f, 1.0f, 2.0f}));
  // Two layers stacked, group 2: |w| / (group max + 1e-6), averaged over the 3 rows.
  const float a[4] = {1, -2, 0.5f, 0.5f};
  const float b[2] = {0, 4};
  float wm[2];
  ASSERT_TRUE(AwqWeightMean({{a, 2}, {b, 1}}, 2, 2, wm).ok());
  EXPECT_FLOAT_EQ(wm[0], (1 / (2 + 1e-6f) + 0.5f / (0.5f + 1e-6f) + 0) / 3);
  EXPECT_FLOAT_EQ(wm[1], (2 / (2 + 1e-6f) + 0.5f / (0.5f + 1e-6f) + 4 / (4 + 1e-6f)) / 3);
  EXPECT_FALSE(AwqWeightMean({{a, 2}}, 2, 3, wm).ok());
}

TEST(Awq, ScalesFormula) {
  const float xm[2] = {1, 4}, wm[2] = {1, 1};
  float s[2];
  AwqScales(xm, wm, 2, 0.5f, true, s);  // {1, 2} / 1.0001, normalized by sqrt(max * min)
  EXPECT_FLOAT_EQ(s[0], 1 / std::sqrt(2.0f));
  EXPECT_FLOAT_EQ(s[1], std::sqrt(2.0f));
  AwqScales(xm, wm, 2, 0.0f, true, s);
  EXPECT_FLOAT_EQ(s[0], 1.0f);
  EXPECT_FLOAT_EQ(s[1], 1.0f);
  const float xz[2] = {0, 9};  // x_mean^r of 0 is floored at 1e-4
  AwqScales(xz, wm, 2, 0.5f, false, s);
  EXPECT_FLOAT_EQ(s[0], 1e-4f / std::sqrt(3.0f * 1e-4f));
  EXPECT_FLOAT_EQ(s[1], 3.0f / std::sqrt(3.0f * 1e-4f));
}

TEST(Awq, SearchKeepsTheSmallestLoss) {
  const float xm[3] = {0.5f, 2, 8}, wm[3] = {0.3f, 0.5f, 0.9f};
  int calls = 0;
  auto res = AwqSearchScales(xm, wm, 3, true, [&](const float* s) {
    ++calls;
    return std::fabs(std::log(s[2] / s[0]) - 1.0);  // some smooth function of the scales
  });
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(calls, 20);
  EXPECT_EQ(res->losses.size(), 20u);
  const size_t best = static_cast<size_t>(std::min_element(res->losses.begin(), res->losses.end()) - res->losses.begin());
  EXPECT_FLOAT_EQ(res->best_ratio, static_cast<float>(best) / 20);
  float s[3];
  AwqScales(xm, wm, 3, res->best_ratio, true, s);
  EXPECT_EQ(res->scales, std::vector<float>(s, s + 3));
  EXPECT_FALSE(AwqSearchScales(xm, wm, 3, true, [](const float*) { return std::nan(""); }).ok());
}

TEST(Awq, ScaledPseudoQuantize) {
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0, 0.02f);
  std::vector<float> w(4 * 64), s(64), out(w.size());
  for (float& v : w) v = nd(rng);
  for (size_t c = 0; c < s.size(); ++c) s[c] = 0.5f + static_cast<float>(c) / 32;
  const LinearQuantSpec spec = AwqSpec(4, 32);
  ASSERT_TRUE(AwqScaledPseudoQuantize(w.data(), 4, 64, s.data(), spec, out.data()).ok());
  for (int64_t r = 0; r < 4; ++r) {
    for (int64_t g = 0; g < 2; ++g) {
      std::vector<float> ws(32);
      for (int64_t k = 0; k < 32; ++k) ws[Z(k)] = w[Z(r * 64 + g * 32 + k)] * s[Z(g * 32 + k)];
      const GroupParams p = FindGroupParams(ws.data(), 32, spec);
      for (int64_t k = 0; k < 32; ++k)
        EXPECT_EQ(out[Z(r * 64 + g * 32 + k)], CodeValue(QuantizeCode(ws[Z(k)], p, 15), p) / s[Z(g * 32 + k)]);
    }
  }
  EXPECT_FALSE(AwqScaledPseudoQuantize(w.data(), 4, 64, s.data(), AwqSpec(4, 48), out.data()).ok());
}

// _compute_best_clip transcribed: products in double, cur_out - org_out.
std::vector<float> ReferenceClip(const std::vector<float>& w, int64_t rows, int64_t cols, const std::vector<float>& x,
                                 int64_t n, const LinearQuantSpec& spec) {
  const int64_t group = spec.group_size, ng = cols / group;
  const int64_t step = std::max<int64_t>(1, n / 512);
  std::vector<float> best(Z(rows * ng));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < ng; ++g) {
      const float* wg = w.data() + r * cols + g * group;
      float org = 0;
      for (int64_t k = 0; k < group; ++k) org = std::max(org, std::fabs(wg[k]));
      double min_err = 1e9;
      float bv = org;
      for (int s = 0; s < 10; ++s) {
        const float mv = org * static_cast<float>(1.0 - s / 20.0);
        std::vector<float> cur(wg, wg + group);
        for (float& v : cur) v = std::clamp(v, -mv, mv);
        const GroupParams p = FindGroupParams(cur.data(), group, spec);
        for (float& v : cur) v = CodeValue(QuantizeCode(v, p, spec.maxq()), p);
        double err = 0;
        int64_t cnt = 0;
        for (int64_t t = 0; t < n; t += step, ++cnt) {
          double o = 0, c = 0;
          for (int64_t k = 0; k < group; ++k) {
            o += static_cast<double>(x[Z(t * cols + g * group + k)]) * wg[k];
            c += static_cast<double>(x[Z(t * cols + g * group + k)]) * cur[Z(k)];
          }
          err += (c - o) * (c - o);
        }
        err /= static_cast<double>(cnt);
        if (err < min_err) {
          min_err = err;
          bv = mv;
        }
      }
      best[Z(r * ng + g)] = bv;
    }
  }
  return best;
}

TEST(Awq, ClipSearchMatchesTranscription) {
  const int64_t rows = 20, cols = 64, n = 1100;  // step 2: 550 sampled tokens
  std::mt19937 rng(4);
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> w(Z(rows * cols)), x(Z(n * cols));
  for (size_t i = 0; i < w.size(); ++i) w[i] = 0.02f * nd(rng) * (i % 17 == 0 ? 6.0f : 1.0f);
  for (float& v : x) v = nd(rng);
  const LinearQuantSpec spec = AwqSpec(3, 32);
  ThreadPool pool(2);
  auto got = AwqSearchClip(w.data(), rows, cols, x.data(), n, cols, spec, {}, &pool);
  ASSERT_TRUE(got.ok()) << got.status().message();
  const std::vector<float> want = ReferenceClip(w, rows, cols, x, n, spec);
  int same = 0;
  for (size_t i = 0; i < want.size(); ++i) same += (*got)[i] == want[i];
  EXPECT_GE(same, static_cast<int>(want.size()) - 1);  // a near-tie may fall either way in float
  auto one = AwqSearchClip(w.data(), rows, cols, x.data(), n, cols, spec, {}, nullptr);
  EXPECT_EQ(*one, *got);
}

TEST(Awq, ClipShrinksAnOutlierThatMeetsNoInput) {
  // The other weights lie on the grid of the largest shrink (range [-0.2, 0.55], step 0.05): only
  // that shrink quantizes them (almost) without error, and the outlier's error meets a zero input.
  const int64_t rows = 4, cols = 32, n = 256;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> w(Z(rows * cols)), x(Z(n * cols));
  for (int64_t i = 0; i < rows * cols; ++i) w[Z(i)] = static_cast<float>(static_cast<int>(rng() % 16) - 4) * 0.05f;
  for (int64_t r = 0; r < rows; ++r) {
    w[Z(r * cols + 3)] = -0.2f;
    w[Z(r * cols + 7)] = 1.0f;
  }
  for (int64_t t = 0; t < n; ++t)
    for (int64_t c = 0; c < cols; ++c) x[Z(t * cols + c)] = c == 7 ? 0.0f : nd(rng);
  auto mv = AwqSearchClip(w.data(), rows, cols, x.data(), n, cols, AwqSpec(4, 32), {}, nullptr);
  ASSERT_TRUE(mv.ok());
  for (float v : *mv) EXPECT_EQ(v, 1.0f * static_cast<float>(1.0 - 9 / 20.0));  // the largest shrink, 0.55
  std::vector<float> clipped = w;
  AwqApplyClip(clipped.data(), rows, cols, 32, mv->data());
  for (int64_t r = 0; r < rows; ++r) EXPECT_FLOAT_EQ(clipped[Z(r * cols + 7)], 0.55f);
}

}  // namespace
}  // namespace lowbit

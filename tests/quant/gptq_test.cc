// GPTQ on the integer grid (quant/gptq.h) where the answer is known: a diagonal Hessian gives RTN
// exactly; correlated inputs give a clearly smaller output error than RTN; the blocked algorithm
// agrees with a plain double-precision transcription of AutoGPTQ's loop; act-order and static
// groups give the g_idx the tools write; damping is raised on a singular H and a Hessian that stays
// singular is a clear error.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "lowbit/base/thread_pool.h"
#include "lowbit/numeric/half.h"
#include "lowbit/quant/gptq.h"
#include "lowbit/quant/hessian.h"

namespace lowbit {
namespace {

inline size_t Z(int64_t v) { return static_cast<size_t>(v); }

struct Layer {
  int64_t rows, cols;
  std::vector<float> w, x, h;  // w [rows][cols], x [n][cols], h = 2/n X^T X
};

// Inputs that share a few latent factors (strongly correlated columns, uneven scales), like the
// activations of a transformer; weights N(0, 0.02).
Layer Correlated(int64_t rows, int64_t cols, int64_t n, unsigned seed, int64_t dead = -1) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0, 1);
  const int64_t f = 16;
  std::vector<float> mix(Z(f * cols));
  for (float& m : mix) m = nd(rng);
  std::vector<float> colscale(Z(cols));
  for (float& s : colscale) s = std::exp(0.7f * nd(rng));
  Layer l{rows, cols, std::vector<float>(Z(rows * cols)), std::vector<float>(Z(n * cols)), {}};
  for (float& v : l.w) v = 0.02f * nd(rng);
  std::vector<float> z(Z(f));
  for (int64_t t = 0; t < n; ++t) {
    for (float& v : z) v = nd(rng);
    for (int64_t c = 0; c < cols; ++c) {
      float s = 0.3f * nd(rng);
      for (int64_t k = 0; k < f; ++k) s += z[Z(k)] * mix[Z(k * cols + c)];
      l.x[Z(t * cols + c)] = c == dead ? 0.0f : s * colscale[Z(c)];
    }
  }
  HessianAccumulator acc(cols);
  acc.AddBatch(l.x.data(), n, cols, nullptr);
  l.h = acc.Finish(nullptr);
  return l;
}

// sum_r d_r^T H d_r with d = W - Q: the layer's output error (times 2/n).
double OutputError(const Layer& l, const std::vector<float>& q) {
  double e = 0;
  for (int64_t r = 0; r < l.rows; ++r) {
    for (int64_t i = 0; i < l.cols; ++i) {
      const double di = l.w[Z(r * l.cols + i)] - q[Z(r * l.cols + i)];
      if (di == 0) continue;
      double s = 0;
      for (int64_t j = 0; j < l.cols; ++j) s += l.h[Z(i * l.cols + j)] * (l.w[Z(r * l.cols + j)] - q[Z(r * l.cols + j)]);
      e += di * s;
    }
  }
  return e;
}

GptqOptions Options(int bits, bool sym, int64_t group) {
  GptqOptions o;
  o.quant.bits = bits;
  o.quant.sym = sym;
  o.quant.group_size = group;
  if (group < 0) o.quant.granularity = QuantGranularity::kPerChannel;
  return o;
}

TEST(Gptq, DiagonalHessianEqualsRtn) {
  const Layer l = Correlated(24, 288, 16, 1);
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> ud(0.1f, 3.0f);
  std::vector<float> h(Z(288 * 288), 0.0f);
  for (int64_t i = 0; i < 288; ++i) h[Z(i * 288 + i)] = ud(rng);
  GptqOptions plain, act;
  act.act_order = true;
  auto f_plain = GptqFactorHessian(h, l.cols, plain, nullptr);
  auto f_act = GptqFactorHessian(h, l.cols, act, nullptr);
  ASSERT_TRUE(f_plain.ok() && f_act.ok());
  for (int bits : {2, 3, 4, 8}) {
    for (bool sym : {false, true}) {
      for (int64_t group : {int64_t{-1}, int64_t{32}, int64_t{128}}) {
        for (bool mse : {false, true}) {
          if (mse && bits != 4) continue;
          GptqOptions o = Options(bits, sym, group);
          if (mse) o.quant.range = QuantRange::kMse;
          o.act_order = group == 32;  // with static groups act-order must not change the result
          o.static_groups = group == 32;
          auto g = GptqQuantize(l.w.data(), l.rows, l.cols, o.act_order ? *f_act : *f_plain, o, nullptr);
          ASSERT_TRUE(g.ok()) << g.status().message();
          auto r = QuantizeLinear(l.w.data(), l.rows, l.cols, o.quant);
          ASSERT_TRUE(r.ok());
          EXPECT_EQ(g->q.codes, r->codes) << bits << sym << group << mse;
          EXPECT_EQ(g->q.scales, r->scales);
          EXPECT_EQ(g->q.zeros, r->zeros);
          EXPECT_EQ(g->q.g_idx, r->g_idx);
        }
      }
    }
  }
}

TEST(Gptq, CorrelatedInputsBeatRtnClearly) {
  const Layer l = Correlated(64, 256, 1024, 3);
  for (int bits : {3, 4}) {
    for (bool act_order : {false, true}) {
      GptqOptions o = Options(bits, false, 128);
      o.act_order = act_order;
      auto g = GptqQuantize(l.w.data(), l.rows, l.cols, l.h, o, nullptr);
      ASSERT_TRUE(g.ok()) << g.status().message();
      const double eg = OutputError(l, g->q.Dequantize());
      const double er = OutputError(l, QuantizeLinear(l.w.data(), l.rows, l.cols, o.quant)->Dequantize());
      EXPECT_LT(eg, 0.5 * er) << "bits " << bits << " act_order " << act_order << ": " << eg << " vs RTN " << er;
      for (float s : g->q.scales) EXPECT_EQ(Fp16ToFp32(Fp32ToFp16(s)), s);
      for (uint8_t c : g->q.codes) EXPECT_LT(c, 1 << bits);
    }
  }
}

// A transcription of AutoGPTQ's fasterquant in double precision, without blocks: U from the explicit
// inverse, every update applied at once.
std::vector<float> ReferenceGptq(const Layer& l, const GptqOptions& o) {
  const int64_t n = l.cols;
  std::vector<double> h(l.h.begin(), l.h.end());
  double mean = 0;
  for (int64_t i = 0; i < n; ++i) mean += h[Z(i * n + i)];
  mean /= n;
  for (int64_t i = 0; i < n; ++i) h[Z(i * n + i)] += o.damp_percent * mean;
  // Inverse by Gauss-Jordan, then its upper Cholesky factor.
  std::vector<double> inv(Z(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) inv[Z(i * n + i)] = 1;
  for (int64_t c = 0; c < n; ++c) {
    const double p = h[Z(c * n + c)];
    for (int64_t j = 0; j < n; ++j) {
      h[Z(c * n + j)] /= p;
      inv[Z(c * n + j)] /= p;
    }
    for (int64_t r = 0; r < n; ++r) {
      if (r == c) continue;
      const double f = h[Z(r * n + c)];
      for (int64_t j = 0; j < n; ++j) {
        h[Z(r * n + j)] -= f * h[Z(c * n + j)];
        inv[Z(r * n + j)] -= f * inv[Z(c * n + j)];
      }
    }
  }
  std::vector<double> u(Z(n * n), 0.0);  // inv = U^T U
  for (int64_t i = 0; i < n; ++i) {
    double d = inv[Z(i * n + i)];
    for (int64_t k = 0; k < i; ++k) d -= u[Z(k * n + i)] * u[Z(k * n + i)];
    u[Z(i * n + i)] = std::sqrt(d);
    for (int64_t j = i + 1; j < n; ++j) {
      double s = inv[Z(i * n + j)];
      for (int64_t k = 0; k < i; ++k) s -= u[Z(k * n + i)] * u[Z(k * n + j)];
      u[Z(i * n + j)] = s / u[Z(i * n + i)];
    }
  }
  std::vector<float> q(Z(l.rows * n));
  for (int64_t r = 0; r < l.rows; ++r) {
    std::vector<double> w(l.w.begin() + r * n, l.w.begin() + (r + 1) * n);
    GroupParams p;
    for (int64_t i = 0; i < n; ++i) {
      if (i % o.quant.group_size == 0) {
        std::vector<float> g;
        for (int64_t j = i; j < std::min(n, i + o.quant.group_size); ++j) g.push_back(static_cast<float>(w[Z(j)]));
        p = FindGroupParams(g.data(), static_cast<int64_t>(g.size()), o.quant);
      }
      const float v = CodeValue(QuantizeCode(static_cast<float>(w[Z(i)]), p, o.quant.maxq()), p);
      const double e = (w[Z(i)] - v) / u[Z(i * n + i)];
      for (int64_t j = i + 1; j < n; ++j) w[Z(j)] -= e * u[Z(i * n + j)];
      q[Z(r * n + i)] = v;
    }
  }
  return q;
}

TEST(Gptq, AgreesWithPlainDoubleTranscription) {
  const Layer l = Correlated(16, 160, 512, 4);
  const GptqOptions o = Options(4, false, 32);
  auto g = GptqQuantize(l.w.data(), l.rows, l.cols, l.h, o, nullptr);
  ASSERT_TRUE(g.ok());
  const std::vector<float> got = g->q.Dequantize(), want = ReferenceGptq(l, o);
  int64_t same = 0;
  for (size_t i = 0; i < got.size(); ++i) same += got[i] == want[i];
  EXPECT_GT(same, static_cast<int64_t>(0.97 * static_cast<double>(got.size())));
  const double eg = OutputError(l, got), er = OutputError(l, want);
  EXPECT_NEAR(eg, er, 0.03 * er);
}

TEST(Gptq, ActOrderGroupIndex) {
  const Layer l = Correlated(8, 256, 256, 5);
  GptqOptions o = Options(4, false, 64);
  o.act_order = true;
  o.static_groups = true;
  auto s = GptqQuantize(l.w.data(), l.rows, l.cols, l.h, o, nullptr);
  ASSERT_TRUE(s.ok());
  for (int64_t c = 0; c < l.cols; ++c) EXPECT_EQ(s->q.g_idx[Z(c)], c / 64);  // monotone
  ASSERT_EQ(s->perm.size(), Z(l.cols));
  for (int64_t i = 1; i < l.cols; ++i)  // descending diag H
    EXPECT_GE(l.h[Z(s->perm[Z(i - 1)] * (l.cols + 1))], l.h[Z(s->perm[Z(i)] * (l.cols + 1))]);
  o.static_groups = false;
  auto d = GptqQuantize(l.w.data(), l.rows, l.cols, l.h, o, nullptr);
  ASSERT_TRUE(d.ok());
  std::vector<int> count(4, 0);
  bool monotone = true;
  for (int64_t c = 0; c < l.cols; ++c) {
    ++count[Z(d->q.g_idx[Z(c)])];
    if (c > 0 && d->q.g_idx[Z(c)] < d->q.g_idx[Z(c - 1)]) monotone = false;
  }
  for (int64_t i = 0; i < l.cols; ++i) EXPECT_EQ(d->q.g_idx[Z(d->perm[Z(i)])], i / 64);
  EXPECT_EQ(count, std::vector<int>(4, 64));
  EXPECT_FALSE(monotone);
}

TEST(Gptq, DeadColumnsAreZero) {
  const Layer l = Correlated(8, 64, 128, 6, /*dead=*/5);
  auto g = GptqQuantize(l.w.data(), l.rows, l.cols, l.h, Options(4, false, 32), nullptr);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->stats.dead_columns, 1);
  for (int64_t r = 0; r < l.rows; ++r) EXPECT_EQ(g->q.Value(r, 5), 0.0f);
}

TEST(Gptq, SameResultOnAnyThreadCount) {
  const Layer l = Correlated(100, 320, 256, 7);
  GptqOptions o = Options(3, true, 128);
  o.act_order = true;
  ThreadPool pool(2);
  auto a = GptqQuantize(l.w.data(), l.rows, l.cols, l.h, o, nullptr);
  auto b = GptqQuantize(l.w.data(), l.rows, l.cols, l.h, o, &pool);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->q.codes, b->q.codes);
  EXPECT_EQ(a->q.scales, b->q.scales);
  EXPECT_EQ(a->stats.loss, b->stats.loss);
}

// q/k/v share one input: one factorization serves them all, with the results of separate calls.
TEST(Gptq, SharedFactorGivesTheSameResults) {
  const Layer l = Correlated(48, 128, 256, 8);
  GptqOptions o = Options(4, false, 64);
  o.act_order = true;
  auto f = GptqFactorHessian(l.h, l.cols, o, nullptr, "blk.0.attn_norm");
  ASSERT_TRUE(f.ok());
  for (int64_t r0 : {int64_t{0}, int64_t{16}, int64_t{32}}) {
    auto shared = GptqQuantize(l.w.data() + r0 * l.cols, 16, l.cols, *f, o, nullptr);
    auto own = GptqQuantize(l.w.data() + r0 * l.cols, 16, l.cols, l.h, o, nullptr);
    ASSERT_TRUE(shared.ok() && own.ok());
    EXPECT_EQ(shared->q.codes, own->q.codes);
    EXPECT_EQ(shared->q.scales, own->q.scales);
    EXPECT_EQ(shared->q.g_idx, own->q.g_idx);
  }
  o.act_order = false;
  auto bad = GptqQuantize(l.w.data(), 16, l.cols, *f, o, nullptr);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("act-order is off but the Hessian factor was made with it"), std::string::npos)
      << bad.status().message();
  EXPECT_FALSE(GptqQuantize(l.w.data(), 32, 64, *f, o, nullptr).ok());  // wrong width
}

TEST(Gptq, DampingIsRaisedWhenCholeskyFails) {
  // H = [[4, 4], [4, 4]]: with no damping the second pivot is exactly 0.
  const std::vector<float> w = {0.1f, -0.2f, 0.3f, 0.05f};
  GptqOptions o = Options(4, false, 128);
  o.damp_percent = 0;
  auto g = GptqQuantize(w.data(), 2, 2, {4, 4, 4, 4}, o, nullptr);
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_EQ(g->stats.damp_raises, 1);
  EXPECT_DOUBLE_EQ(g->stats.damp_percent, 0.01);
  o.damp_increment = 0;
  EXPECT_FALSE(GptqQuantize(w.data(), 2, 2, {4, 4, 4, 4}, o, nullptr).ok());
}

TEST(Gptq, HessianThatStaysSingularIsAClearError) {
  const std::vector<float> w = {0.1f, -0.2f, 0.3f, 0.05f};
  auto g = GptqQuantize(w.data(), 2, 2, {1, 2, 2, 1}, Options(4, false, 128), nullptr, "blk.0.attn_q.weight");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("blk.0.attn_q.weight: the Hessian stays singular"), std::string::npos)
      << g.status().message();
  auto nan = GptqQuantize(w.data(), 2, 2, {1, NAN, NAN, 1}, Options(4, false, 128), nullptr);
  ASSERT_FALSE(nan.ok());
  EXPECT_NE(nan.status().message().find("not finite"), std::string::npos);
  EXPECT_FALSE(GptqQuantize(w.data(), 2, 2, {1, 0, 0}, Options(4, false, 128), nullptr).ok());  // wrong size
}

}  // namespace
}  // namespace lowbit

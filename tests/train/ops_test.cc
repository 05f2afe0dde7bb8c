// Each training operation's backward against finite differences of its forward: the loss is
// L = sum(c * y) for random c (so dL/dy = c), the analytic gradient comes from the backward, the
// numeric one from (L(x + h) - L(x - h)) / 2h on sampled coordinates. A wrong sign, term or index
// gives errors of the gradient's own size; float rounding stays below the tolerance.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "lowbit/train/ops.h"

namespace lowbit::train {
namespace {

std::vector<float> Random(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

double Weighted(const std::vector<float>& y, const std::vector<float>& c) {
  double s = 0;
  for (size_t i = 0; i < y.size(); ++i) s += static_cast<double>(y[i]) * c[i];
  return s;
}

// Checks analytic gradient `grad` of `loss` with respect to `x` at up to `samples` coordinates.
void CheckGrad(const char* what, std::vector<float>& x, const std::vector<float>& grad, const std::function<double()>& loss,
               std::mt19937& rng, int samples = 40, float h = 1e-2f) {
  ASSERT_EQ(x.size(), grad.size()) << what;
  std::uniform_int_distribution<size_t> pick(0, x.size() - 1);
  for (int s = 0; s < samples; ++s) {
    const size_t i = samples >= static_cast<int>(x.size()) ? static_cast<size_t>(s % x.size()) : pick(rng);
    const float keep = x[i];
    x[i] = keep + h;
    const double up = loss();
    x[i] = keep - h;
    const double down = loss();
    x[i] = keep;
    const double num = (up - down) / (2.0 * h);
    EXPECT_NEAR(grad[i], num, 2e-3 + 1e-2 * std::fabs(num)) << what << " coordinate " << i;
  }
}

TEST(TrainOps, RmsNorm) {
  std::mt19937 rng(1);
  const int64_t rows = 3, n = 20;
  auto x = Random(rows * n, rng), w = Random(n, rng), c = Random(rows * n, rng);
  std::vector<float> y(rows * n), rstd(rows), dx(rows * n), dw(n, 0.0f);
  auto loss = [&] {
    RmsNormForward(x.data(), w.data(), rows, n, 1e-5f, y.data(), rstd.data(), nullptr);
    return Weighted(y, c);
  };
  loss();
  RmsNormBackward(x.data(), w.data(), rstd.data(), c.data(), rows, n, dx.data(), false, dw.data(), nullptr);
  CheckGrad("rmsnorm dx", x, dx, loss, rng);
  CheckGrad("rmsnorm dw", w, dw, loss, rng);
  // accumulate_dx adds; a pool gives the same numbers
  std::vector<float> dx2(rows * n, 1.0f), dw2(n, 0.0f);
  ThreadPool pool(2);
  RmsNormBackward(x.data(), w.data(), rstd.data(), c.data(), rows, n, dx2.data(), true, dw2.data(), &pool);
  for (int64_t i = 0; i < rows * n; ++i) EXPECT_FLOAT_EQ(dx2[i], dx[i] + 1.0f);
  for (int64_t i = 0; i < n; ++i) EXPECT_FLOAT_EQ(dw2[i], dw[i]);
}

TEST(TrainOps, RopeBothLayoutsAndPartialDims) {
  std::mt19937 rng(2);
  for (bool neox : {false, true}) {
    for (int64_t rope_dim : {int64_t{8}, int64_t{4}}) {
      const int64_t rows = 5, heads = 3, hd = 8;
      const RopeTable t = RopeTable::Make(16, rope_dim, 10000.0f, neox);
      std::vector<int32_t> pos = {0, 3, 7, 15, 2};
      auto x = Random(rows * heads * hd, rng), c = Random(rows * heads * hd, rng);
      std::vector<float> y;
      auto loss = [&] {
        y = x;
        RopeForward(t, y.data(), rows, heads, hd, pos.data());
        return Weighted(y, c);
      };
      std::vector<float> dx = c;
      RopeBackward(t, dx.data(), rows, heads, hd, pos.data());
      CheckGrad(neox ? "rope neox" : "rope adjacent", x, dx, loss, rng);
      // Backward undoes the forward (a rotation): forward then backward gives the input back.
      std::vector<float> z = x;
      RopeForward(t, z.data(), rows, heads, hd, pos.data());
      RopeBackward(t, z.data(), rows, heads, hd, pos.data());
      for (size_t i = 0; i < z.size(); ++i) EXPECT_NEAR(z[i], x[i], 1e-5f);
    }
  }
}

TEST(TrainOps, CausalAttentionWithGroupedHeads) {
  std::mt19937 rng(3);
  const AttnShape s{.seqs = 2, .T = 5, .n_head = 4, .n_kv = 2, .hd = 6, .scale = 1.0f / std::sqrt(6.0f)};
  const int64_t R = s.seqs * s.T, qd = s.n_head * s.hd, kvd = s.n_kv * s.hd;
  auto q = Random(R * qd, rng), k = Random(R * kvd, rng), v = Random(R * kvd, rng), c = Random(R * qd, rng);
  std::vector<float> out(R * qd), probs(s.seqs * s.n_head * s.T * s.T), dq(R * qd), dk(R * kvd), dv(R * kvd);
  ThreadPool pool(2);
  auto loss = [&] {
    AttentionForward(s, q.data(), k.data(), v.data(), out.data(), probs.data(), &pool);
    return Weighted(out, c);
  };
  loss();
  // Causality: a query's probabilities past its own position are zero, and each row sums to one.
  for (int64_t i = 0; i < s.T; ++i) {
    double sum = 0;
    for (int64_t j = 0; j < s.T; ++j) {
      if (j > i) {
        EXPECT_EQ(probs[i * s.T + j], 0.0f);
      }
      sum += probs[i * s.T + j];
    }
    EXPECT_NEAR(sum, 1.0, 1e-5);
  }
  AttentionBackward(s, q.data(), k.data(), v.data(), probs.data(), c.data(), dq.data(), dk.data(), dv.data(), &pool);
  CheckGrad("attention dq", q, dq, loss, rng, 60);
  CheckGrad("attention dk", k, dk, loss, rng, 60);
  CheckGrad("attention dv", v, dv, loss, rng, 60);
}

TEST(TrainOps, SwiGlu) {
  std::mt19937 rng(4);
  const int64_t n = 50;
  auto g = Random(n, rng, 3.0f), u = Random(n, rng), c = Random(n, rng);
  std::vector<float> h(n), dg(n), du(n);
  auto loss = [&] {
    SwiGluForward(g.data(), u.data(), n, h.data(), nullptr);
    return Weighted(h, c);
  };
  SwiGluBackward(g.data(), u.data(), c.data(), n, dg.data(), du.data(), nullptr);
  CheckGrad("swiglu dg", g, dg, loss, rng, 50, 1e-3f);
  CheckGrad("swiglu du", u, du, loss, rng, 50);
}

TEST(TrainOps, EmbeddingAndBias) {
  std::mt19937 rng(5);
  const int64_t V = 7, n = 4, rows = 6;
  std::vector<int32_t> tok = {3, 0, 3, 6, 1, 3};
  auto table = Random(V * n, rng), c = Random(rows * n, rng), b = Random(n, rng);
  std::vector<float> x(rows * n), dtable(V * n, 0.0f), db(n, 0.0f);
  auto loss = [&] {
    EmbeddingForward(table.data(), tok.data(), rows, n, x.data());
    AddBias(b.data(), rows, n, x.data());
    return Weighted(x, c);
  };
  EmbeddingBackward(c.data(), tok.data(), rows, n, dtable.data());
  BiasBackward(c.data(), rows, n, db.data());
  CheckGrad("embedding", table, dtable, loss, rng, static_cast<int>(V * n));
  CheckGrad("bias", b, db, loss, rng, static_cast<int>(n));
}

TEST(TrainOps, CrossEntropyAndDistillation) {
  std::mt19937 rng(6);
  const int64_t rows = 4, V = 9;
  auto z = Random(rows * V, rng, 2.0f), tz = Random(rows * V, rng, 2.0f);
  std::vector<int32_t> targets = {2, -1, 8, 0};
  std::vector<float> dz(rows * V), tlp(rows * V);
  const float scale = 0.5f;
  auto ce = [&] { return scale * CrossEntropy(z.data(), targets.data(), rows, V, scale, dz.data(), nullptr); };
  const double nll = ce() / scale;
  std::vector<float> dce = dz;
  for (int64_t v = 0; v < V; ++v) EXPECT_EQ(dce[1 * V + v], 0.0f);  // row without a target
  CheckGrad("cross-entropy", z, dce, ce, rng, static_cast<int>(rows * V));
  // The loss is the negative log-likelihood of the targets.
  double want = 0;
  for (int64_t r : {0, 2, 3}) {
    double sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(z[r * V + v]));
    want += std::log(sum) - z[r * V + targets[r]];
  }
  EXPECT_NEAR(nll, want, 1e-6);

  LogSoftmaxRows(tz.data(), rows, V, tlp.data(), nullptr);
  std::vector<uint8_t> mask = {1, 1, 0, 1};
  auto kl = [&] { return scale * KlDistill(z.data(), tlp.data(), mask.data(), rows, V, scale, dz.data(), nullptr); };
  kl();
  std::vector<float> dkl = dz;
  CheckGrad("distillation", z, dkl, kl, rng, static_cast<int>(rows * V));
  // KL of a distribution with itself is zero, and positive otherwise.
  std::vector<float> same(rows * V);
  EXPECT_NEAR(KlDistill(tz.data(), tlp.data(), nullptr, rows, V, 1.0f, same.data(), nullptr), 0.0, 1e-6);
  EXPECT_GT(KlDistill(z.data(), tlp.data(), nullptr, rows, V, 1.0f, same.data(), nullptr), 0.01);
}

}  // namespace
}  // namespace lowbit::train

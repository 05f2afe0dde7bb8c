// GPTQ's linear algebra (quant/linalg.h, hessian.h): the SIMD kernel rows give the reference's bits;
// the Hessian, the Cholesky factor and the triangular inverse agree with naive double-precision
// references; results do not depend on the thread count.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "lowbit/base/cpu_features.h"
#include "lowbit/base/thread_pool.h"
#include "lowbit/quant/hessian.h"
#include "lowbit/quant/linalg.h"

namespace lowbit {
namespace {

std::vector<float> Random(size_t n, unsigned seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0, scale);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

class LinalgIsaTest : public ::testing::TestWithParam<Isa> {};

TEST_P(LinalgIsaTest, GemmSameBitsAsReference) {
  const LinalgKernels& ref = LinalgKernelsFor(Isa::kRef);
  const LinalgKernels& isa = LinalgKernelsFor(GetParam());
  const int shapes[][3] = {{8, 32, 7}, {13, 45, 33}, {1, 1, 1}, {31, 70, 128}, {64, 17, 5}, {5, 200, 64}};
  for (const auto& sh : shapes) {
    const int64_t m = sh[0], n = sh[1], k = sh[2];
    for (bool unit_row : {true, false}) {
      const std::vector<float> a = Random(static_cast<size_t>(m * k + 64), 1);
      const std::vector<float> b = Random(static_cast<size_t>(k * (n + 3)), 2);
      for (GemmMode mode : {GemmMode::kSet, GemmMode::kAdd, GemmMode::kSub}) {
        GemmArgs g;
        g.m = m;
        g.n = n;
        g.k = k;
        g.a = a.data();
        g.a_rs = unit_row ? 1 : k;
        g.a_ks = unit_row ? m : 1;
        g.b = b.data();
        g.ldb = n + 3;
        std::vector<float> c0 = Random(static_cast<size_t>(m * (n + 5)), 3), c1 = c0;
        g.ldc = n + 5;
        g.c = c0.data();
        ref.gemm(g, mode);
        g.c = c1.data();
        isa.gemm(g, mode);
        ASSERT_EQ(std::memcmp(c0.data(), c1.data(), c0.size() * 4), 0) << m << "x" << n << "x" << k;
        // And it is the product: compare one element with a double sum.
        double want = 0;
        for (int64_t kk = 0; kk < k; ++kk) want += static_cast<double>(a[static_cast<size_t>((m - 1) * g.a_rs + kk * g.a_ks)]) * b[static_cast<size_t>(kk * g.ldb + n - 1)];
        if (mode == GemmMode::kSet) {
          EXPECT_NEAR(c0[static_cast<size_t>((m - 1) * g.ldc + n - 1)], want, 1e-4 * (1 + std::fabs(want)));
        }
      }
    }
  }
}

TEST_P(LinalgIsaTest, AxpySameBitsAsReference) {
  const LinalgKernels& ref = LinalgKernelsFor(Isa::kRef);
  const LinalgKernels& isa = LinalgKernelsFor(GetParam());
  for (int64_t n : {0, 1, 7, 8, 15, 16, 17, 100}) {
    const std::vector<float> x = Random(static_cast<size_t>(n) + 1, 4);
    std::vector<float> y0 = Random(static_cast<size_t>(n) + 1, 5), y1 = y0;
    ref.axpy(n, -0.37f, x.data(), y0.data());
    isa.axpy(n, -0.37f, x.data(), y1.data());
    ASSERT_EQ(y0, y1) << n;
  }
}

INSTANTIATE_TEST_SUITE_P(EveryIsaThisCpuRuns, LinalgIsaTest, ::testing::ValuesIn(SupportedIsas()),
                         [](const ::testing::TestParamInfo<Isa>& p) { return std::string(IsaName(p.param)); });

// H = 2/n X^T X, batches of different sizes (the running rescale), against a double sum.
TEST(Hessian, MatchesDoubleReferenceAndThreadCount) {
  const int64_t cols = 70, n = 700;
  const std::vector<float> x = Random(static_cast<size_t>(n * cols), 6);
  ThreadPool pool(2);
  HessianAccumulator h1(cols), h2(cols);
  const int64_t cuts[] = {0, 1, 300, 301, 700};
  for (int i = 0; i + 1 < 5; ++i) {
    h1.AddBatch(x.data() + cuts[i] * cols, cuts[i + 1] - cuts[i], cols, nullptr);
    h2.AddBatch(x.data() + cuts[i] * cols, cuts[i + 1] - cuts[i], cols, &pool);
  }
  h1.AddBatch(x.data(), 0, cols, nullptr);  // empty batch: no change
  EXPECT_EQ(h1.nsamples(), n);
  const std::vector<float> a = h1.Finish(nullptr), b = h2.Finish(&pool);
  ASSERT_EQ(a, b);
  for (int64_t i = 0; i < cols; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      double want = 0;
      for (int64_t t = 0; t < n; ++t) want += static_cast<double>(x[static_cast<size_t>(t * cols + i)]) * x[static_cast<size_t>(t * cols + j)];
      want *= 2.0 / n;
      ASSERT_NEAR(a[static_cast<size_t>(i * cols + j)], want, 2e-5 * (1 + std::fabs(want))) << i << "," << j;
      ASSERT_EQ(a[static_cast<size_t>(i * cols + j)], a[static_cast<size_t>(j * cols + i)]);
    }
  }
}

// A symmetric positive definite matrix with a spread of eigenvalues.
std::vector<float> Spd(int64_t n, unsigned seed) {
  const std::vector<float> b = Random(static_cast<size_t>(n * n), seed);
  std::vector<float> a(static_cast<size_t>(n * n));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      double s = 0;
      for (int64_t k = 0; k < n; ++k) s += static_cast<double>(b[static_cast<size_t>(i * n + k)]) * b[static_cast<size_t>(j * n + k)];
      if (i == j) s += 0.5 * n;
      a[static_cast<size_t>(i * n + j)] = a[static_cast<size_t>(j * n + i)] = static_cast<float>(s / n);
    }
  return a;
}

TEST(Linalg, CholeskyAndInverseAgainstDoubleReference) {
  const int64_t n = 300;  // not a multiple of the 32-wide panels nor the 128 block
  const std::vector<float> a = Spd(n, 8);
  std::vector<float> l = a;
  int64_t bad = -1;
  ThreadPool pool(2);
  ASSERT_TRUE(linalg::CholeskyLower(l.data(), n, n, &pool, &bad));
  // Naive double Cholesky.
  std::vector<double> ld(static_cast<size_t>(n * n), 0.0);
  for (int64_t j = 0; j < n; ++j) {
    double d = a[static_cast<size_t>(j * n + j)];
    for (int64_t k = 0; k < j; ++k) d -= ld[static_cast<size_t>(j * n + k)] * ld[static_cast<size_t>(j * n + k)];
    ld[static_cast<size_t>(j * n + j)] = std::sqrt(d);
    for (int64_t i = j + 1; i < n; ++i) {
      double s = a[static_cast<size_t>(i * n + j)];
      for (int64_t k = 0; k < j; ++k) s -= ld[static_cast<size_t>(i * n + k)] * ld[static_cast<size_t>(j * n + k)];
      ld[static_cast<size_t>(i * n + j)] = s / ld[static_cast<size_t>(j * n + j)];
    }
  }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      if (j <= i) {
        ASSERT_NEAR(l[static_cast<size_t>(i * n + j)], ld[static_cast<size_t>(i * n + j)], 2e-5) << i << "," << j;
      } else {
        ASSERT_EQ(l[static_cast<size_t>(i * n + j)], a[static_cast<size_t>(i * n + j)]);  // upper triangle untouched
      }
    }
  // Same bits on one thread.
  std::vector<float> l1 = a;
  ASSERT_TRUE(linalg::CholeskyLower(l1.data(), n, n, nullptr, &bad));
  ASSERT_EQ(l, l1);
  // L^-1 L = I.
  std::vector<float> x = l;
  linalg::InvertLowerTriangular(x.data(), n, n, &pool);
  std::vector<float> x1 = l1;
  linalg::InvertLowerTriangular(x1.data(), n, n, nullptr);
  ASSERT_EQ(x, x1);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t k = j; k <= i; ++k) s += static_cast<double>(x[static_cast<size_t>(i * n + k)]) * ld[static_cast<size_t>(k * n + j)];
      ASSERT_NEAR(s, i == j ? 1.0 : 0.0, 1e-5) << i << "," << j;
      if (j > i) {
        ASSERT_EQ(x[static_cast<size_t>(i * n + j)], 0.0f);
      }
    }
}

TEST(Linalg, CholeskyReportsTheFailingColumn) {
  const int64_t n = 200;
  std::vector<float> a = Spd(n, 9);
  // Make column 150 a copy of column 20 (and the row likewise): singular, pivot 150 fails.
  for (int64_t i = 0; i < n; ++i) {
    a[static_cast<size_t>(i * n + 150)] = a[static_cast<size_t>(i * n + 20)];
    a[static_cast<size_t>(150 * n + i)] = a[static_cast<size_t>(20 * n + i)];
  }
  a[static_cast<size_t>(150 * n + 150)] = a[static_cast<size_t>(20 * n + 20)] - 1.0f;  // strictly indefinite
  int64_t bad = -1;
  EXPECT_FALSE(linalg::CholeskyLower(a.data(), n, n, nullptr, &bad));
  EXPECT_EQ(bad, 150);
}

TEST(Linalg, Permutations) {
  const int64_t n = 37;
  const std::vector<float> a = Spd(n, 10);
  std::vector<int32_t> q(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) q[static_cast<size_t>(i)] = static_cast<int32_t>((i * 11 + 5) % n);
  std::vector<float> p = a;
  linalg::PermuteSymmetric(p.data(), n, q, nullptr);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) ASSERT_EQ(p[static_cast<size_t>(i * n + j)], a[static_cast<size_t>(q[static_cast<size_t>(i)] * n + q[static_cast<size_t>(j)])]);
  std::vector<float> r = a;
  linalg::Rotate180(r.data(), n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) ASSERT_EQ(r[static_cast<size_t>(i * n + j)], a[static_cast<size_t>((n - 1 - i) * n + n - 1 - j)]);
}

}  // namespace
}  // namespace lowbit

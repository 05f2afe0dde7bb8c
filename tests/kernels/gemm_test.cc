// The training GEMM (kernels/gemm.h): every ISA table the CPU runs, on every combination of
// transposed operands, with edges that are not multiples of the tiles or slivers, single- and
// multi-threaded, equals the plain triple loop within float rounding (the bound grows with k).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "lowbit/kernels/gemm.h"

namespace lowbit {
namespace {

struct Shape {
  int64_t m, n, k;
};

// Dot products of k terms of size ~1 differ by at most ~k ulps between summation orders.
void Expect(const std::vector<float>& got, const std::vector<float>& want, int64_t k, const char* what) {
  ASSERT_EQ(got.size(), want.size());
  const float tol = 4e-7f * static_cast<float>(k) + 1e-6f;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], tol * (1.0f + std::fabs(want[i]))) << what << " at " << i;
  }
}

void RunCase(Isa isa, Shape s, bool at, bool bt, bool acc, ThreadPool* pool, std::mt19937& rng) {
  std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
  std::vector<float> a(static_cast<size_t>(s.m * s.k + 7)), b(static_cast<size_t>(s.k * s.n + 5));
  for (auto& v : a) v = ud(rng);
  for (auto& v : b) v = ud(rng);
  // Leading dimensions larger than the logical widths, to test strides.
  const int64_t lda = (at ? s.m : s.k) + 3, ldb = (bt ? s.k : s.n) + 1, ldc = s.n + 2;
  a.resize(static_cast<size_t>((at ? s.k : s.m) * lda));
  b.resize(static_cast<size_t>((bt ? s.n : s.k) * ldb));
  for (auto& v : a) v = ud(rng);
  for (auto& v : b) v = ud(rng);
  std::vector<float> c0(static_cast<size_t>(s.m * ldc));
  for (auto& v : c0) v = ud(rng);
  std::vector<float> want = c0, got = c0;
  GemmArgs g{.m = s.m, .n = s.n, .k = s.k, .a = a.data(), .lda = lda, .a_trans = at, .b = b.data(), .ldb = ldb,
             .b_trans = bt, .c = want.data(), .ldc = ldc, .accumulate = acc};
  GemmF32Ref(g);
  g.c = got.data();
  GemmF32(GemmKernelFor(isa), g, pool);
  const std::string what = std::string(IsaName(isa)) + (at ? " At" : " A") + (bt ? " Bt" : " B") + (acc ? " +=" : " =");
  Expect(got, want, s.k, what.c_str());
}

TEST(Gemm, EveryIsaMatchesTheTripleLoop) {
  std::mt19937 rng(7);
  ThreadPool pool2(2);
  const Shape shapes[] = {{1, 1, 1}, {5, 3, 7}, {8, 32, 16}, {97, 259, 300}, {200, 33, 513}, {6, 17, 1}};
  for (Isa isa : SupportedIsas()) {
    for (const Shape& s : shapes) {
      for (int mode = 0; mode < 8; ++mode) {
        RunCase(isa, s, mode & 1, mode & 2, mode & 4, &pool2, rng);
        RunCase(isa, s, mode & 1, mode & 2, mode & 4, nullptr, rng);
      }
    }
  }
}

TEST(Gemm, ThreadCountDoesNotChangeTheResult) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
  const int64_t m = 300, n = 520, k = 700;
  std::vector<float> a(m * k), b(k * n), c1(m * n), c2(m * n);
  for (auto& v : a) v = ud(rng);
  for (auto& v : b) v = ud(rng);
  GemmArgs g{.m = m, .n = n, .k = k, .a = a.data(), .lda = k, .b = b.data(), .ldb = n, .c = c1.data(), .ldc = n};
  GemmF32(g, nullptr);
  ThreadPool pool(3);
  g.c = c2.data();
  GemmF32(g, &pool);
  EXPECT_EQ(c1, c2);  // each element is computed by one tile, in the same order
}

TEST(Gemm, ZeroDepthClearsOrKeeps) {
  std::vector<float> c = {1, 2, 3, 4};
  GemmArgs g{.m = 2, .n = 2, .k = 0, .c = c.data(), .ldc = 2, .accumulate = true};
  GemmF32(g, nullptr);
  EXPECT_EQ(c, (std::vector<float>{1, 2, 3, 4}));
  g.accumulate = false;
  GemmF32(g, nullptr);
  EXPECT_EQ(c, (std::vector<float>{0, 0, 0, 0}));
}

}  // namespace
}  // namespace lowbit

// The quantizer searches (search_impl.inc) are built for the baseline ISA and for AVX2 from one
// source; they must give the same bits, so a file quantized on one machine is the file quantized on
// any other. Every code path is exercised: uniform and code-book levels, unit and importance
// weights, 8..32 fit lanes, one and several starts and descent rounds.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "lowbit/base/cpu_features.h"
#include "lowbit/numeric/half.h"
#include "lowbit/quant/search.h"

namespace lowbit::search {
namespace {

struct Data {
  std::vector<float> x, w;
};

// Blocks of N values: Gaussian, heavy-tailed (a few large outliers), all-positive, tiny, constant and
// all-zero, each with unit weights and with random importances (some zero).
std::vector<Data> Blocks(int n) {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::uniform_real_distribution<float> ud(0.0f, 1.0f);
  std::vector<Data> out;
  for (int kind = 0; kind < 6; ++kind) {
    for (int rep = 0; rep < 4; ++rep) {
      Data d{std::vector<float>(n), std::vector<float>(n, 1.0f)};
      for (int i = 0; i < n; ++i) {
        switch (kind) {
          case 0: d.x[i] = nd(rng); break;
          case 1: d.x[i] = ud(rng) < 0.03f ? 20 * nd(rng) : nd(rng); break;
          case 2: d.x[i] = std::fabs(nd(rng)) + 0.01f; break;
          case 3: d.x[i] = 1e-6f * nd(rng); break;
          case 4: d.x[i] = 0.5f; break;
          default: d.x[i] = 0.0f; break;
        }
      }
      out.push_back(d);
      for (int i = 0; i < n; ++i) d.w[i] = ud(rng) < 0.1f ? 0.0f : ud(rng) * ud(rng) * 4;
      out.push_back(d);
    }
  }
  return out;
}

const Effort kEfforts[] = {
    {8, 1, 8, 1, 1, 0.05f, 0.10f}, {8, 2, 8, 1, 1}, {8, 2, 8, 1, 2, 0.40f, 0.25f},
    {16, 2, 16, 2, 4}, {24, 2, 24, 3, 3, 0.2f, 0.2f}, {32, 1, 32, 2, 2},
};

class SearchIsaTest : public ::testing::TestWithParam<Isa> {};

TEST_P(SearchIsaTest, AffineSameBitsAsReference) {
  const SearchTable& ref = SearchTableFor(Isa::kRef);
  const SearchTable& isa = SearchTableFor(GetParam());
  const std::array<int, 4> shapes[] = {{16, 16, 3, 15}, {8, 32, 15, 63}, {8, 32, 31, 63}};
  for (const auto& [nsub, len, nmax, lmax] : shapes) {
    for (const Effort& ef : kEfforts) {
      const AffineSpec spec{nsub, len, nmax, lmax, ef};
      for (const Data& b : Blocks(nsub * len)) {
        float d[2], dmin[2];
        int ls[2][32], lm[2][32];
        uint8_t L[2][256];
        const double e0 = ref.affine(spec, b.x.data(), b.w.data(), &d[0], &dmin[0], ls[0], lm[0], L[0]);
        const double e1 = isa.affine(spec, b.x.data(), b.w.data(), &d[1], &dmin[1], ls[1], lm[1], L[1]);
        ASSERT_EQ(std::memcmp(&e0, &e1, sizeof e0), 0) << e0 << " vs " << e1;
        ASSERT_EQ(std::memcmp(&d[0], &d[1], 4), 0);
        ASSERT_EQ(std::memcmp(&dmin[0], &dmin[1], 4), 0);
        ASSERT_EQ(std::memcmp(ls[0], ls[1], sizeof(int) * nsub), 0);
        ASSERT_EQ(std::memcmp(lm[0], lm[1], sizeof(int) * nsub), 0);
        ASSERT_EQ(std::memcmp(L[0], L[1], nsub * len), 0);
        // The result is a real encoding: scales fp16-exact, codes and sub-scales in range.
        ASSERT_EQ(Fp16ToFp32(Fp32ToFp16(d[0])), d[0]);
        for (int j = 0; j < nsub; ++j) ASSERT_TRUE(ls[0][j] >= 0 && ls[0][j] <= lmax && lm[0][j] >= 0 && lm[0][j] <= lmax);
        for (int i = 0; i < nsub * len; ++i) ASSERT_LE(L[0][i], nmax);
      }
    }
  }
}

TEST_P(SearchIsaTest, SymmetricAndScaledSameBitsAsReference) {
  const SearchTable& ref = SearchTableFor(Isa::kRef);
  const SearchTable& isa = SearchTableFor(GetParam());
  static const float kBook[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
  const SymmetricSpec specs[] = {{16, 16, {8, -4, nullptr}, -32, 31, {}},
                                 {16, 16, {64, -32, nullptr}, -128, 127, {}},
                                 {8, 32, {16, 0, kBook}, -32, 31, {}}};
  for (SymmetricSpec spec : specs) {
    for (const Effort& ef : kEfforts) {
      spec.effort = ef;
      const int n = spec.nsub * spec.len;
      for (const Data& b : Blocks(n)) {
        float d[2];
        int s[2][32];
        uint8_t idx[2][256];
        const double e0 = ref.symmetric(spec, b.x.data(), b.w.data(), &d[0], s[0], idx[0]);
        const double e1 = isa.symmetric(spec, b.x.data(), b.w.data(), &d[1], s[1], idx[1]);
        ASSERT_EQ(std::memcmp(&e0, &e1, sizeof e0), 0) << e0 << " vs " << e1;
        ASSERT_EQ(std::memcmp(&d[0], &d[1], 4), 0);
        ASSERT_EQ(std::memcmp(s[0], s[1], sizeof(int) * spec.nsub), 0);
        ASSERT_EQ(std::memcmp(idx[0], idx[1], n), 0);
        for (int i = 0; i < n; ++i) ASSERT_LT(idx[0][i], spec.levels.n);
        if (spec.levels.book == nullptr) continue;
        // The one-level code-book fit (IQ4_NL) on the first 32 values.
        float c[2];
        const double f0 = ref.scaled(spec.levels, b.x.data(), b.w.data(), 32, ef, &c[0], idx[0]);
        const double f1 = isa.scaled(spec.levels, b.x.data(), b.w.data(), 32, ef, &c[1], idx[1]);
        ASSERT_EQ(std::memcmp(&f0, &f1, sizeof f0), 0);
        ASSERT_EQ(std::memcmp(&c[0], &c[1], 4), 0);
        ASSERT_EQ(std::memcmp(idx[0], idx[1], 32), 0);
      }
    }
  }
}

// The error a search reports is the error of what it stored.
TEST(Search, ReportedErrorIsTheStoredError) {
  const AffineSpec spec{8, 32, 15, 63, Effort{8, 2, 8, 1, 2}};
  for (const Data& b : Blocks(256)) {
    float d, dmin;
    int ls[8], lm[8];
    uint8_t L[256];
    const double e = QuantizeAffine(spec, b.x.data(), b.w.data(), &d, &dmin, ls, lm, L);
    double direct = 0;
    for (int i = 0; i < 256; ++i) {
      const double y = static_cast<double>(d * static_cast<float>(ls[i / 32])) * L[i] -
                       static_cast<double>(dmin * static_cast<float>(lm[i / 32]));
      direct += b.w[i] * (b.x[i] - y) * (b.x[i] - y);
    }
    EXPECT_NEAR(e, direct, 1e-5 * direct + 1e-12);
  }
}

INSTANTIATE_TEST_SUITE_P(EveryIsaThisCpuRuns, SearchIsaTest, ::testing::ValuesIn(SupportedIsas()),
                         [](const ::testing::TestParamInfo<Isa>& p) { return std::string(IsaName(p.param)); });

}  // namespace
}  // namespace lowbit::search

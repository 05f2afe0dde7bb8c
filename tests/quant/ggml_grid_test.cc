// The element-grid table (quant/ggml_grid.h), every row: a block's codes and grid give its
// dequantized values bit for bit, for the codes the quantizer chose and for any other codes;
// replacing the codes by the block's own codes gives the same bytes; Nearest is the nearest value.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "lowbit/numeric/dequant.h"
#include "lowbit/quant/ggml_grid.h"
#include "lowbit/quant/quantize.h"

namespace lowbit {
namespace {

inline size_t Z(int64_t v) { return static_cast<size_t>(v); }

std::vector<float> Data(int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0, 0.02f);
  std::uniform_real_distribution<float> ud(0, 1);
  std::vector<float> v(Z(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t block = i / 256;
    v[Z(i)] = block % 3 == 0 ? nd(rng) : block % 3 == 1 ? (ud(rng) < 0.05f ? 10 * nd(rng) : nd(rng)) : std::fabs(nd(rng)) + 0.01f;
  }
  return v;
}

TEST(GgmlGrid, EveryTypeRoundTrips) {
  ASSERT_GE(AllGgmlGrids().size(), 12u);
  const int64_t n = 256 * 6;
  const std::vector<float> x = Data(n, 1);
  std::vector<float> imatrix(Z(n));
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> ud(0.1f, 2.0f);
  for (float& v : imatrix) v = ud(rng);
  for (const GgmlGrid& g : AllGgmlGrids()) {
    SCOPED_TRACE(std::string(TypeInfo(g.type).name));
    const size_t bb = TypeInfo(g.type).block_bytes;
    ASSERT_EQ(static_cast<int>(TypeInfo(g.type).block_size), g.block_size);
    std::vector<uint8_t> q(*RowBytes(g.type, Z(n)));
    FromFloatFor(g.type)(x.data(), q.data(), n, imatrix.data());
    std::vector<float> y(Z(n));
    ASSERT_TRUE(DequantizeRow(g.type, q.data(), y.data(), n));
    const int bs = g.block_size;
    std::vector<float> a(Z(bs)), b(Z(bs)), y2(Z(bs));
    std::vector<uint8_t> codes(Z(bs)), other(Z(bs)), back(Z(bs)), copy(bb);
    for (int64_t blk = 0; blk < n / bs; ++blk) {
      const uint8_t* block = q.data() + Z(blk) * bb;
      g.grid(block, a.data(), b.data());
      g.get_codes(block, codes.data());
      for (int j = 0; j < bs; ++j) {
        ASSERT_LT(codes[Z(j)], g.n_levels);
        ASSERT_EQ(GgmlGrid::Value(a[Z(j)], b[Z(j)], g.Level(codes[Z(j)])), y[Z(blk * bs + j)]) << "block " << blk << " element " << j;
      }
      // Any codes: the grid stays, the values follow.
      for (uint8_t& c : other) c = static_cast<uint8_t>(rng() % static_cast<unsigned>(g.n_levels));
      std::memcpy(copy.data(), block, bb);
      g.set_codes(copy.data(), other.data());
      g.get_codes(copy.data(), back.data());
      ASSERT_EQ(back, other);
      ASSERT_TRUE(DequantizeRow(g.type, copy.data(), y2.data(), bs));
      std::vector<float> a2(Z(bs)), b2(Z(bs));
      g.grid(copy.data(), a2.data(), b2.data());
      ASSERT_EQ(a2, a);
      ASSERT_EQ(b2, b);
      for (int j = 0; j < bs; ++j) ASSERT_EQ(GgmlGrid::Value(a[Z(j)], b[Z(j)], g.Level(other[Z(j)])), y2[Z(j)]);
      // Back to the block's own codes: the same bytes.
      g.set_codes(copy.data(), codes.data());
      ASSERT_EQ(std::memcmp(copy.data(), block, bb), 0);
      ASSERT_TRUE(DequantizeRow(g.type, copy.data(), y2.data(), bs));
      for (int j = 0; j < bs; ++j) ASSERT_EQ(y2[Z(j)], y[Z(blk * bs + j)]);
    }
  }
}

TEST(GgmlGrid, NearestIsTheNearestStoredValue) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0, 1);
  for (const GgmlGrid& g : AllGgmlGrids()) {
    for (int trial = 0; trial < 2000; ++trial) {
      const float a = trial % 50 == 0 ? 0.0f : nd(rng) * 0.01f, b = trial % 3 == 0 ? nd(rng) * 0.02f : 0.0f;
      const float x = nd(rng) * 0.01f * static_cast<float>(g.n_levels) / 4;
      const int k = g.Nearest(x, a, b);
      ASSERT_GE(k, 0);
      ASSERT_LT(k, g.n_levels);
      const float best = std::fabs(GgmlGrid::Value(a, b, g.Level(k)) - x);
      for (int i = 0; i < g.n_levels; ++i) ASSERT_LE(best, std::fabs(GgmlGrid::Value(a, b, g.Level(i)) - x));
    }
  }
}

}  // namespace
}  // namespace lowbit

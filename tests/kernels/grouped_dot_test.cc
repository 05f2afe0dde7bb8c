// The grouped-integer types' kernels (W4G32 .. W8G128 against Q8_0 activations):
//  - the reference dot computes fp16(d) * (q - z) times the quantized activations, within float
//    rounding of the exact sum;
//  - every ISA table's 1-row, 4-token, 8-row decode and prefill GEMM kernels equal the reference bit
//    for bit, on random rows and at the integer bounds (largest codes, zero points 0, 2^bits and the
//    int16 extremes, activations all +-127).
// And the input map of a product (MatMulArgs::x_map): converting through a map gives the bytes of the
// gathered row, and an act-order layer stored regrouped and padded, run through its map, gives exactly
// the product of the same stored weights on the gathered input, and the layer's own product.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "lowbit/base/thread_pool.h"
#include "lowbit/kernels/dot.h"
#include "lowbit/kernels/matvec.h"
#include "lowbit/numeric/blocks.h"
#include "lowbit/numeric/dequant.h"
#include "lowbit/numeric/grouped.h"
#include "lowbit/numeric/half.h"
#include "lowbit/quant/quantize.h"

namespace lowbit {
namespace {

using enum GgmlType;
const GgmlType kGrouped[] = {kW4G32, kW4G64, kW4G128, kW8G32, kW8G64, kW8G128};

// How a test row's blocks are filled.
enum class Fill { kRandom, kLargestCodes, kZeroAtTop, kInt16Extremes };

// `rows` rows of n columns of grouped type t: random fp16 scales; codes and zero points by `fill`.
std::vector<uint8_t> GroupedRows(GgmlType t, int64_t rows, int64_t n, Fill fill, std::mt19937& rng) {
  const int bits = GroupedContainerBits(t), max_code = (1 << bits) - 1;
  const uint64_t bb = TypeInfo(t).block_bytes;
  std::uniform_int_distribution<int> code(0, max_code), zero(0, 1 << bits), coin(0, 1);
  std::normal_distribution<float> nd(0.0f, 0.01f);
  std::vector<uint8_t> w(static_cast<size_t>(rows) * *RowBytes(t, n));
  for (uint64_t b = 0; b < w.size() / bb; ++b) {
    uint8_t* blk = w.data() + b * bb;
    const uint16_t d = Fp32ToFp16(nd(rng));
    int16_t z = 0;
    switch (fill) {
      case Fill::kRandom: z = static_cast<int16_t>(zero(rng)); break;
      case Fill::kLargestCodes: z = 0; break;                                            // every code max, no zero term
      case Fill::kZeroAtTop: z = static_cast<int16_t>(1 << bits); break;                 // GPTQ v1's 2^bits
      case Fill::kInt16Extremes: z = coin(rng) ? int16_t{32767} : int16_t{-32768}; break;
    }
    std::memcpy(blk, &d, 2);
    std::memcpy(blk + 2, &z, 2);
    for (uint64_t i = 4; i < bb; ++i) {
      const int q0 = fill == Fill::kRandom ? code(rng) : fill == Fill::kZeroAtTop && coin(rng) ? 0 : max_code;
      const int q1 = fill == Fill::kRandom ? code(rng) : fill == Fill::kZeroAtTop && coin(rng) ? 0 : max_code;
      blk[i] = static_cast<uint8_t>(bits == 4 ? q0 | q1 << 4 : q0);
    }
  }
  return w;
}

// Activation rows: Gaussian with outliers, or (sign != 0) a constant of that sign, whose Q8_0 codes
// are all +127 or all -127.
std::vector<uint8_t> ActRows(GgmlType t, int64_t ntok, int64_t n, int sign, std::mt19937& rng, const DotKernels& k) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const uint64_t ab = ActRowBytes(t, n);
  std::vector<uint8_t> act(ntok * ab);
  std::vector<float> x(n);
  for (int64_t b = 0; b < ntok; ++b) {
    for (auto& v : x) v = sign != 0 ? 1.5f * static_cast<float>(sign) : nd(rng);
    if (sign == 0) {
      for (int64_t i = b; i < n; i += 37) x[i] *= -30.0f;
    }
    QuantizeActivations(k, t, x.data(), act.data() + b * ab, n);
  }
  return act;
}

TEST(GroupedDot, ReferenceIsTheFormulaWithinFloatRounding) {
  std::mt19937 rng(1);
  const DotKernels& ref = DotKernelsFor(Isa::kRef);
  for (GgmlType t : kGrouped) {
    for (Fill fill : {Fill::kRandom, Fill::kLargestCodes, Fill::kZeroAtTop, Fill::kInt16Extremes}) {
      const int64_t n = 1024;
      const std::vector<uint8_t> w = GroupedRows(t, 1, n, fill, rng);
      const std::vector<uint8_t> act = ActRows(t, 1, n, 0, rng, ref);
      std::vector<float> wf(n);
      ToFloatFor(t)(w.data(), wf.data(), n);
      const auto* a = reinterpret_cast<const BlockQ8_0*>(act.data());
      double exact = 0, mag = 0;
      for (int64_t i = 0; i < n; ++i) {
        const double v = static_cast<double>(wf[i]) * Fp16ToFp32(a[i / 32].d) * a[i / 32].qs[i % 32];
        exact += v;
        mag += std::fabs(v);
      }
      const float got = ref.For(t)(w.data(), act.data(), n);
      EXPECT_NEAR(got, exact, 4e-6 * mag + 1e-30) << TypeInfo(t).name << " fill " << static_cast<int>(fill);
    }
  }
}

// The kernels of one ISA table on n-column rows against the reference, bit for bit.
void CheckTable(const DotKernels& k, GgmlType t, Fill fill, int sign, std::mt19937& rng) {
  SCOPED_TRACE(testing::Message() << TypeInfo(t).name << " fill " << static_cast<int>(fill) << " sign " << sign);
  const DotKernels& ref = DotKernelsFor(Isa::kRef);
  const int64_t n = 768, rows = 16, ntok = 11;
  const uint64_t rb = *RowBytes(t, n), ab = ActRowBytes(t, n);
  const std::vector<uint8_t> w = GroupedRows(t, rows, n, fill, rng);
  const std::vector<uint8_t> act = ActRows(t, ntok, n, sign, rng, k);
  std::vector<float> want(ntok * rows);
  for (int64_t b = 0; b < ntok; ++b) {
    for (int64_t r = 0; r < rows; ++r) want[b * rows + r] = ref.For(t)(w.data() + r * rb, act.data() + b * ab, n);
  }
  for (int64_t b = 0; b < ntok; ++b) {
    for (int64_t r = 0; r < rows; ++r) ASSERT_EQ(k.For(t)(w.data() + r * rb, act.data() + b * ab, n), want[b * rows + r]) << "dot row " << r << " tok " << b;
  }
  if (k.For4(t) != nullptr) {
    for (int64_t r = 0; r < rows; ++r) {
      float four[4];
      k.For4(t)(w.data() + r * rb, act.data(), ab, n, four);
      for (int j = 0; j < 4; ++j) ASSERT_EQ(four[j], want[j * rows + r]) << "dot4 row " << r << " tok " << j;
    }
  }
  auto check8 = [&](Gemm8Fn f, int nrows, int64_t nt, const char* what) {
    if (f == nullptr) return;
    std::vector<uint8_t> in = act;
    if (k.ForGemm8Layout(t) != nullptr && std::string(what) != "rows8") k.ForGemm8Layout(t)(act.data(), ab, n, nt, in.data());
    for (int64_t r0 = 0; r0 + nrows <= rows; r0 += nrows) {
      std::vector<float> y(nt * nrows, NAN);
      f(w.data() + r0 * rb, rb, n, in.data(), ab, nt, y.data(), nrows);
      for (int64_t b = 0; b < nt; ++b) {
        for (int r = 0; r < nrows; ++r) ASSERT_EQ(y[b * nrows + r], want[b * rows + r0 + r]) << what << " row " << r0 + r << " tok " << b << " of " << nt;
      }
    }
  };
  check8(k.ForRows8(t), 8, 1, "rows8");
  check8(k.ForRows8(t), 8, 3, "rows8");  // the contract holds for any token count
  for (int64_t nt : {5, 8, 11}) {         // passes of 4 pairs, single pairs and an odd last token with VNNI
    check8(k.ForGemm8(t), 8, nt, "gemm8");
    check8(k.ForGemm16(t), 16, nt, "gemm16");
  }
}

class GroupedKernelsTest : public ::testing::TestWithParam<Isa> {};

TEST_P(GroupedKernelsTest, EqualTheReferenceBitForBit) {
  const DotKernels& k = DotKernelsFor(GetParam());
  std::mt19937 rng(2);
  int rows8 = 0, gemm8 = 0, gemm16 = 0;
  for (GgmlType t : kGrouped) {
    ASSERT_NE(k.For(t), nullptr);
    EXPECT_EQ(ActTypeFor(t), kQ8_0);
    rows8 += k.ForRows8(t) != nullptr;
    gemm8 += k.ForGemm8(t) != nullptr;
    gemm16 += k.ForGemm16(t) != nullptr;
    CheckTable(k, t, Fill::kRandom, 0, rng);
    // The integer sums at their bounds: every code at its largest against activations all +127 and
    // all -127; zero points 2^bits (16, 256) with codes 0 and max; the int16 extremes.
    for (int sign : {1, -1}) {
      CheckTable(k, t, Fill::kLargestCodes, sign, rng);
      CheckTable(k, t, Fill::kZeroAtTop, sign, rng);
      CheckTable(k, t, Fill::kInt16Extremes, sign, rng);
    }
    CheckTable(k, t, Fill::kInt16Extremes, 0, rng);
  }
  if (GetParam() == Isa::kAvx2) {
    EXPECT_EQ(rows8 * 100 + gemm8 * 10 + gemm16, 660);  // the 16-row GEMM only with VNNI
  }
  if (GetParam() == Isa::kAvx512) {
    EXPECT_EQ(rows8 * 100 + gemm8 * 10 + gemm16, 666);
  }
}

INSTANTIATE_TEST_SUITE_P(EveryIsaThisCpuRuns, GroupedKernelsTest, ::testing::ValuesIn(SupportedIsas()),
                         [](const auto& p) { return std::string(IsaName(p.param)); });

// ---- The input map.

// Converting through a map gives, byte for byte, the row converted from the gathered input, for every
// activation type, with lengths that leave a partial chunk of the gather.
TEST_P(GroupedKernelsTest, MappedActivationsEqualTheGatheredRow) {
  const DotKernels& k = DotKernelsFor(GetParam());
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (auto [t, n] : {std::pair{kW4G128, int64_t{2144}}, {kQ4_1, 1056}, {kQ4_K, 1280}, {kF16, 999}}) {
    const int64_t width = n / 2 + 7;  // the input is narrower than the row: columns repeat, some are padding
    std::vector<float> x(width);
    for (auto& v : x) v = nd(rng);
    std::vector<int32_t> map(n);
    std::uniform_int_distribution<int32_t> col(-1, static_cast<int32_t>(width) - 1);
    for (auto& m : map) m = col(rng);
    std::vector<float> gathered(n);
    for (int64_t i = 0; i < n; ++i) gathered[i] = map[i] < 0 ? 0.0f : x[map[i]];
    std::vector<uint8_t> want(ActRowBytes(t, n), 0x5A), got(ActRowBytes(t, n), 0x5A);
    QuantizeActivations(k, t, gathered.data(), want.data(), n);
    QuantizeActivations(k, t, x.data(), map.data(), got.data(), n);
    EXPECT_EQ(got, want) << TypeInfo(t).name;
  }
}

// An act-order layer: codes in input order, column c in group g_idx[c] (a random assignment, as
// GPTQ's act-order leaves it), stored with its columns sorted by group and each group padded to whole
// blocks, and the map that undoes both.
struct ActOrderLayer {
  int64_t rows, cols, group;
  std::vector<uint8_t> codes;  // [rows][cols], input order
  std::vector<int32_t> g_idx;
  std::vector<uint16_t> d;     // [n_groups][rows]
  std::vector<int32_t> z;
  GroupedLayout layout;
  std::vector<uint8_t> stored;
  std::vector<int32_t> x_map;  // stored column -> input column, -1 for padding
};

ActOrderLayer MakeActOrderLayer(int bits, int64_t rows, int64_t cols, int64_t group, std::mt19937& rng) {
  ActOrderLayer l{rows, cols, group, {}, {}, {}, {}, {}, {}, {}};
  const int64_t ng = (cols + group - 1) / group;
  std::uniform_int_distribution<int> code(0, (1 << bits) - 1), zero(0, 1 << bits);
  std::normal_distribution<float> nd(0.0f, 0.01f);
  l.codes.resize(rows * cols);
  for (auto& q : l.codes) q = static_cast<uint8_t>(code(rng));
  std::vector<int32_t> order(cols);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  l.g_idx.resize(cols);
  for (int64_t j = 0; j < cols; ++j) l.g_idx[order[j]] = static_cast<int32_t>(j / group);
  for (int64_t i = 0; i < ng * rows; ++i) l.d.push_back(Fp32ToFp16(nd(rng))), l.z.push_back(zero(rng));
  // Regroup: input columns sorted by group (stable), codes in that order.
  std::vector<int32_t> perm(cols);
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(), [&](int32_t a, int32_t b) { return l.g_idx[a] < l.g_idx[b]; });
  std::vector<uint8_t> sorted(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < cols; ++j) sorted[r * cols + j] = l.codes[r * cols + perm[j]];
  }
  l.layout = *PlanGrouped(bits, cols, group);
  l.stored.resize(rows * l.layout.row_bytes());
  EXPECT_TRUE(PackGroupedRows(l.layout, sorted.data(), l.d.data(), l.z.data(), rows, l.stored.data()).ok());
  for (int32_t src : l.layout.ColumnMap()) l.x_map.push_back(src < 0 ? -1 : perm[src]);
  return l;
}

// An act-order layer of 288 input columns in groups of 128 (stored as 384 columns, the last group
// padded), run through its map for one token and for a batch, on one and two threads: exactly the
// unmapped product of the same stored weights on the gathered input, and within the activation
// rounding of the layer's own product (each column c weighted fp16(d) * (q - z) of group g_idx[c]).
TEST_P(GroupedKernelsTest, MappedProductEqualsThePlainProductOnTheGatheredInput) {
  const DotKernels& k = DotKernelsFor(GetParam());
  std::mt19937 rng(6);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  ThreadPool pool(2);
  MatMulScratch scratch;
  for (int bits : {4, 8, 3}) {
    const int64_t rows = 1100, cols = 288, group = 128, batch = 19;  // rows: 8-row chunks and a rest of 4
    const ActOrderLayer l = MakeActOrderLayer(bits, rows, cols, group, rng);
    const int64_t sc = l.layout.stored_cols;
    ASSERT_EQ(sc, 384);
    std::vector<float> x(batch * cols), gathered(batch * sc);
    for (auto& v : x) v = nd(rng);
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t j = 0; j < sc; ++j) gathered[b * sc + j] = l.x_map[j] < 0 ? 0.0f : x[b * cols + l.x_map[j]];
    }
    for (int64_t nb : {int64_t{1}, batch}) {
      for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
        std::vector<float> y(nb * rows, NAN), want(nb * rows, NAN);
        MatMul(k, MatMulArgs{.type = l.layout.type, .w = l.stored.data(), .rows = rows, .cols = sc, .x = x.data(), .x_map = l.x_map.data(),
                             .x_stride = cols, .batch = nb, .y = y.data()}, p, &scratch);
        MatMul(k, MatMulArgs{.type = l.layout.type, .w = l.stored.data(), .rows = rows, .cols = sc, .x = gathered.data(), .batch = nb, .y = want.data()},
               p, &scratch);
        for (int64_t i = 0; i < nb * rows; ++i) ASSERT_EQ(y[i], want[i]) << bits << "-bit, batch " << nb << ", output " << i;
        // The layer itself, in input order, in double: within what quantizing the activations costs.
        for (int64_t b = 0; b < nb; ++b) {
          for (int64_t r = 0; r < rows; r += 97) {
            double exact = 0, bound = 0, amax = 0;
            for (int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(static_cast<double>(x[b * cols + c])));
            for (int64_t c = 0; c < cols; ++c) {
              const int64_t gi = l.g_idx[c] * rows + r;
              const double wv = static_cast<double>(Fp16ToFp32(l.d[gi])) * (l.codes[r * cols + c] - l.z[gi]);
              exact += wv * x[b * cols + c];
              bound += std::fabs(wv) * amax * (0.5 / 127 + 1e-3);  // per-block amax <= the row's
            }
            ASSERT_NEAR(y[b * rows + r], exact, bound) << bits << "-bit row " << r;
          }
        }
      }
    }
  }
}

// A one-token group of products on one input shares a conversion only where the maps agree too:
// q and k through the same map, v through another, all equal to each product alone.
TEST(GroupedMatMul, GroupSharesAConversionOnlyForTheSameMap) {
  std::mt19937 rng(8);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  ThreadPool pool(2);
  MatMulScratch scratch;
  const int64_t cols = 288;
  const ActOrderLayer q = MakeActOrderLayer(4, 1024, cols, 128, rng), v = MakeActOrderLayer(4, 512, cols, 128, rng);
  std::vector<float> x(cols);
  for (auto& e : x) e = nd(rng);
  auto args = [&](const ActOrderLayer& l, const int32_t* map, float* y) {
    return MatMulArgs{.type = l.layout.type, .w = l.stored.data(), .rows = l.rows, .cols = l.layout.stored_cols, .x = x.data(), .x_map = map,
                      .x_stride = cols, .batch = 1, .y = y};
  };
  std::vector<float> yq(1024, NAN), yk(1024, NAN), yv(512, NAN), aq(1024), ak(1024), av(512);
  std::vector<int32_t> k_map = q.x_map;  // a different pointer to the same map: converted again, same numbers
  const MatMulArgs group[] = {args(q, q.x_map.data(), yq.data()), args(q, k_map.data(), yk.data()), args(v, v.x_map.data(), yv.data())};
  MatMulGroup(group, &pool, &scratch);
  MatMul(args(q, q.x_map.data(), aq.data()), nullptr, &scratch);
  MatMul(args(q, k_map.data(), ak.data()), nullptr, &scratch);
  MatMul(args(v, v.x_map.data(), av.data()), nullptr, &scratch);
  EXPECT_EQ(yq, aq);
  EXPECT_EQ(yk, ak);
  EXPECT_EQ(yv, av);
  EXPECT_NE(q.x_map, v.x_map);
}

}  // namespace
}  // namespace lowbit

// Weights with 8 rows interleaved (numeric/interleave.h: Q4_Kx8, Q5_Kx8, Q2_Kx8, Q3_Kx8, Q6_Kx8, IQ4_XSx8 and the 32-element types'
// Q4_0x8, Q4_1x8, Q5_0x8, Q5_1x8, IQ4_NLx8): the rearrangement loses
// nothing (every row reads back as the file's bytes and dequantizes to the same floats), and the
// 8-row kernel on it gives the file type's reference dot bit for bit for 1..9 tokens, at the extremes
// of codes, scales and activations too; the batch-invariant MatMul on it gives each token the file
// layout's one-token product, threaded or not, for decode steps and a prefill's token count.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "lowbit/base/thread_pool.h"
#include "lowbit/kernels/dot.h"
#include "lowbit/kernels/matvec.h"
#include "lowbit/numeric/blocks.h"
#include "lowbit/numeric/dequant.h"
#include "lowbit/numeric/half.h"
#include "lowbit/numeric/interleave.h"
#include "lowbit/quant/quantize.h"
#include "model/synth_tiny.h"

namespace lowbit {
namespace {

// The file types that interleave (the model tests' list).
constexpr const auto& kFileTypes = testing::kInterleavingTypes;

// `rows` rows of `cols` columns quantized to `t` from normal values.
std::vector<uint8_t> QuantizedRows(GgmlType t, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  const uint64_t rb = *RowBytes(t, static_cast<uint64_t>(cols));
  std::vector<uint8_t> w(static_cast<size_t>(rows) * rb);
  std::vector<float> row(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (auto& v : row) v = nd(rng) * (r % 3 == 0 ? 10.0f : 1.0f);
    FromFloatFor(t)(row.data(), w.data() + r * rb, cols, nullptr);
  }
  return w;
}

TEST(Interleaved, EveryRowReadsBackAsTheFilesBytes) {
  EXPECT_EQ(InterleavedOf(GgmlType::kQ4_K), GgmlType::kQ4_KX8);
  EXPECT_EQ(InterleavedOf(GgmlType::kQ5_K), GgmlType::kQ5_KX8);
  EXPECT_EQ(InterleavedOf(GgmlType::kIQ4_NL), GgmlType::kIQ4_NLX8);
  EXPECT_EQ(InterleavedOf(GgmlType::kQ6_K), GgmlType::kQ6_KX8);
  EXPECT_FALSE(InterleavedOf(GgmlType::kQ8_0).has_value());
  EXPECT_EQ(StoredTypeOf(GgmlType::kQ5_KX8), GgmlType::kQ5_K);
  EXPECT_EQ(StoredTypeOf(GgmlType::kQ5_1X8), GgmlType::kQ5_1);
  // Whole groups of columns only: a super-block, or 4 blocks of 32.
  EXPECT_TRUE(InterleavesCols(GgmlType::kQ4_0, 128));
  EXPECT_FALSE(InterleavesCols(GgmlType::kQ4_0, 288));  // stories5M's width: 9 blocks
  EXPECT_FALSE(InterleavesCols(GgmlType::kQ4_K, 128));
  EXPECT_FALSE(InterleavesCols(GgmlType::kQ8_0, 4096));
  EXPECT_EQ(StoredTypeOf(GgmlType::kQ8_0), GgmlType::kQ8_0);
  for (GgmlType t : kFileTypes) {
    const GgmlType x8 = *InterleavedOf(t);
    const std::string name(TypeInfo(t).name);
    EXPECT_EQ(*RowBytes(x8, 1280), *RowBytes(t, 1280));
    const int64_t rows = 24, cols = 1280;
    const uint64_t rb = *RowBytes(t, cols);
    // Every byte pattern (all scale, min and fifth bits, any fp16) must survive, not only a quantizer's.
    std::mt19937 rng(5);
    std::vector<uint8_t> file(rows * rb);
    for (auto& b : file) b = static_cast<uint8_t>(rng());
    std::vector<uint8_t> held = file;
    InterleaveRows(t, held.data(), rows, cols);
    EXPECT_NE(held, file);
    std::vector<uint8_t> back(rb);
    for (int64_t r = 0; r < rows; ++r) {
      UninterleaveRow(x8, held.data(), cols, r, back.data());
      ASSERT_EQ(std::memcmp(back.data(), file.data() + r * rb, rb), 0) << name << " row " << r;
    }
    // Quantized rows dequantize to the same floats through either type.
    file = QuantizedRows(t, rows, cols, 6);
    held = file;
    InterleaveRows(t, held.data(), rows, cols);
    std::vector<float> want(cols), got(cols);
    for (int64_t r = 0; r < rows; ++r) {
      DequantizeRowOf(t, file.data(), cols, r, want.data());
      DequantizeRowOf(x8, held.data(), cols, r, got.data());
      ASSERT_EQ(std::memcmp(got.data(), want.data(), cols * 4), 0) << name << " row " << r;
    }
  }
}

// The kernel on 8 interleaved rows against the file type's reference dot on each row, for T = 1..9 tokens at
// once, outputs y_stride 11 apart (nothing written past row 8).
void CheckRows8(const DotKernels& k, GgmlType t, const std::vector<uint8_t>& file, int64_t cols, const std::vector<float>& x,
               const std::string& what) {
  constexpr int64_t kTokens = 9, kStride = 11;
  const GgmlType held_type = *InterleavedOf(t);
  const uint64_t rb = *RowBytes(t, cols), ab = ActRowBytes(t, cols);
  ASSERT_EQ(ActRowBytes(held_type, cols), ab);
  std::vector<uint8_t> x8 = file, act(kTokens * ab);
  InterleaveRows(t, x8.data(), 8, cols);
  for (int64_t b = 0; b < kTokens; ++b) QuantizeActivations(held_type, x.data() + b * cols, act.data() + b * ab, cols);
  const DotKernels& ref = DotKernelsFor(Isa::kRef);
  for (int64_t T = 1; T <= kTokens; ++T) {
    std::vector<float> y(T * kStride, -7.0f);
    k.ForRows8(held_type)(x8.data(), rb, cols, act.data(), ab, T, y.data(), kStride);
    for (int64_t b = 0; b < T; ++b) {
      for (int r = 0; r < 8; ++r) {
        const float want = ref.For(t)(file.data() + r * rb, act.data() + b * ab, cols);
        ASSERT_EQ(std::memcmp(&y[b * kStride + r], &want, 4), 0) << what << ": T " << T << " token " << b << " row " << r;
      }
      for (int r = 8; r < kStride; ++r) ASSERT_EQ(y[b * kStride + r], -7.0f) << what << ": T " << T << " wrote past row 8";
    }
  }
}

TEST(Interleaved, TheKernelGivesTheReferenceDotForEveryTokenCount) {
  int tested = 0;
  for (Isa isa : SupportedIsas()) {
    const DotKernels& k = DotKernelsFor(isa);
    for (GgmlType t : kFileTypes) {
      if (!InterleavedFor(k, t)) continue;
      ++tested;
      const std::string name = std::string(IsaName(isa)) + " " + std::string(TypeInfo(t).name);
      std::mt19937 rng(7);
      std::normal_distribution<float> nd(0.0f, 1.0f);
      for (int64_t cols : {int64_t{256}, int64_t{1280}}) {
        std::vector<float> x(9 * cols);
        for (auto& v : x) v = nd(rng);
        for (size_t i = 0; i < x.size(); i += 37) x[i] *= -40.0f;  // codes at +-127
        CheckRows8(k, t, QuantizedRows(t, 8, cols, 8), cols, x, name + " quantized, " + std::to_string(cols) + " columns");
      }
      // The extremes: every code at its top (15, or 31 with every fifth bit, Q2_K's 3, Q3_K's +3, Q6_K's
      // +31; IQ4_NL's and IQ4_XS's largest value), every scale and min 63 (Q3_K's and IQ4_XS's +31,
      // Q6_K's -128), and activations all at -128 (a row of one positive value quantizes to -128): for
      // the K-quants a lane's sum is -30720 (16 x 15 x 128), -31744 (8 x 31 x 128) or -32256 (Q6_K: 4 x 63
      // x 128), the bounds of the i16 pack. Q3_K, Q6_K and IQ4_XS also at their bottom (every code -4,
      // -32 or -127; every scale -32, or Q6_K's +127; otherwise all bytes 0).
      const int64_t cols = 512;
      const uint64_t bb = TypeInfo(t).block_bytes;
      // Where d is, and dmin / m after it where the type has one.
      const uint64_t d_at = t == GgmlType::kQ2_K   ? offsetof(BlockQ2_K, d)
                            : t == GgmlType::kQ3_K ? offsetof(BlockQ3_K, d)
                            : t == GgmlType::kQ6_K ? offsetof(BlockQ6_K, d)
                                                   : 0;
      const bool second_scale = t == GgmlType::kQ4_K || t == GgmlType::kQ5_K || t == GgmlType::kQ2_K || t == GgmlType::kQ4_1 ||
                                t == GgmlType::kQ5_1;
      for (uint8_t fill : {uint8_t{0xFF}, uint8_t{0}}) {
        if (fill == 0 && t != GgmlType::kQ3_K && t != GgmlType::kQ6_K && t != GgmlType::kIQ4_XS) continue;
        std::vector<uint8_t> file(8 * *RowBytes(t, cols), fill);
        for (int64_t b = 0; b < 8 * cols / TypeInfo(t).block_size; ++b) {
          if (t == GgmlType::kQ6_K) std::memset(file.data() + b * bb + offsetof(BlockQ6_K, scales), fill ? 0x80 : 0x7F, 16);
          const uint16_t d = Fp32ToFp16(0.001f * static_cast<float>(1 + b % 5)), dmin = Fp32ToFp16(0.0005f * static_cast<float>(1 + b % 3));
          std::memcpy(file.data() + b * bb + d_at, &d, 2);
          if (second_scale) std::memcpy(file.data() + b * bb + d_at + 2, &dmin, 2);
        }
        CheckRows8(k, t, file, cols, std::vector<float>(9 * cols, 1.0f), name + (fill ? " extremes" : " bottom"));
      }
    }
  }
  if (tested == 0) GTEST_SKIP() << "no kernel table this CPU runs has interleaved kernels (the AVX-512 VNNI table does)";
}

// MatMul on interleaved weights (12 groups of 8 rows), batch-invariant: T tokens at once give every
// token the one-token product on the file's layout, threaded or not, for decode steps (1..9) and a
// prefill's counts (20: the file layout's GEMM range, where the interleaved types run their 8-row
// kernel; 64: Q6_Kx8's GEMM on its strips put back in Q6_K's layout).
TEST(Interleaved, MatMulGivesTheFileLayoutsOneTokenProducts) {
  for (GgmlType t : kFileTypes) {
    const std::optional<GgmlType> x8_type = InterleavedFor(ActiveDotKernels(), t);
    if (!x8_type) continue;
    const std::string name(TypeInfo(t).name);
    const int64_t rows = 96, cols = 768;
    const std::vector<uint8_t> file = QuantizedRows(t, rows, cols, 9);
    std::vector<uint8_t> x8 = file;
    InterleaveRows(t, x8.data(), rows, cols);
    std::mt19937 rng(10);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    constexpr int64_t kTokens = 64;
    std::vector<float> x(kTokens * cols);
    for (auto& v : x) v = nd(rng);
    MatMulScratch scratch;
    std::vector<float> one(kTokens * rows);
    for (int64_t b = 0; b < kTokens; ++b) {
      MatMul(MatMulArgs{.type = t, .w = file.data(), .rows = rows, .cols = cols, .x = x.data() + b * cols, .batch = 1, .y = one.data() + b * rows,
                        .batch_invariant = true},
             nullptr, &scratch);
    }
    ThreadPool pool(2);
    for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
      for (int64_t T : {1, 2, 3, 4, 5, 8, 9, 20, 64}) {
        std::vector<float> y(T * rows);
        MatMul(MatMulArgs{.type = *x8_type, .w = x8.data(), .rows = rows, .cols = cols, .x = x.data(), .batch = T, .y = y.data(),
                          .batch_invariant = true},
               p, &scratch);
        ASSERT_EQ(std::memcmp(y.data(), one.data(), y.size() * 4), 0) << name << " T " << T << (p ? ", 2 threads" : ", 1 thread");
      }
    }
  }
}

}  // namespace
}  // namespace lowbit

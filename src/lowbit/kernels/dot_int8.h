// LLM.int8 with outlier decomposition (Dettmers et al. 2022; bitsandbytes' MatMul8bitLt) on the
// internal I8R32 / I8R256 rows (numeric/bnb.h BlockI8R): int8 weights with one fp32 SCB per row.
//
// The activation row of a token (ActTypeFor = I8; prepared once per product by QuantizeActivations
// with the product's threshold T, MatMulArgs::outlier_threshold):
//   - columns where this token's |x| >= T (T > 0) are outliers: kept in float, listed in column order;
//   - the rest are quantized with the token's own scale s = absmax / 127 (absmax over the non-outlier
//     columns): code = round-half-even(x * (127 / absmax)), the outliers' codes 0.
// T = 0 is plain int8 x int8 (no outliers). The decision is per token, where bitsandbytes takes the
// union of the outlier columns over the batch: lowbit's logits of a token are the same in any batch
// (MatMulArgs::batch_invariant), which a batch-wide union would break (docs/DESIGN-NOTES.md).
//
// Layout (n columns, S = n rounded up to 16): int8 codes[n]; at S: float s, int32 count, int32 the
// codes' sum, 4 bytes unused; at S + 16: int32 column[n] (the first `count` used); at S + 16 + 4n: float value[n].
//
// The result for a weight row with SCB c and codes q (the contract of every table, which all meet
// bit for bit): isum = the exact int32 sum of q[j] * code[j] (cols <= kMaxInt8Cols keeps it exact),
//   int = float(isum) * (s * (c * kInv127)),
//   p[0..3] = 0, then for each outlier k in order: p[k % 4] = p[k % 4] + value[k] * Int8Value(q[column[k]], c)
//   (four chains, so that a token with many outliers is not one long chain of dependent adds),
//   result = int + ((p[0] + p[1]) + (p[2] + p[3])).
// The outlier part is therefore the float product with the dequantized weight column, exactly.
#pragma once

#include <cstdint>
#include <cstring>

#include "lowbit/numeric/bnb.h"

namespace lowbit {

// The int8 sums stay exact in int32 up to this many columns (127 * 127 * n < 2^31).
inline constexpr int64_t kMaxInt8Cols = 131072;

struct Int8ActHeader {
  float scale;       // absmax / 127 of the non-outlier columns (0 when all are 0)
  int32_t count;     // outlier columns
  int32_t code_sum;  // the sum of the n codes (the kernels that add 128 to each weight code take 128 x this off)
  int32_t unused;
};
static_assert(sizeof(Int8ActHeader) == 16);

inline uint64_t Int8ActHeaderOffset(int64_t n) { return (static_cast<uint64_t>(n) + 15) / 16 * 16; }
inline uint64_t Int8ActRowBytes(int64_t n) {
  return (Int8ActHeaderOffset(n) + sizeof(Int8ActHeader) + 8 * static_cast<uint64_t>(n) + 63) / 64 * 64;
}

// The activation row above from n inputs (element i is x[x_map[i]], or 0 where x_map[i] < 0, when
// x_map is not null). One scalar quantizer for every table: it is O(n) per token against the
// product's O(rows * n).
void QuantizeInt8Activations(const float* x, const int32_t* x_map, uint8_t* out, int64_t n, float threshold);

// The part of the contract after the integer sum: the scales and the outliers in float.
template <int G>
inline float Int8RowResult(const uint8_t* row, int32_t isum, const uint8_t* act, int64_t n) {
  const auto* w = reinterpret_cast<const BlockI8R<G>*>(row);
  Int8ActHeader h;
  std::memcpy(&h, act + Int8ActHeaderOffset(n), sizeof(h));
  const float c = w[0].scb;
  const float int_part = static_cast<float>(isum) * (h.scale * (c * kInv127));
  const uint8_t* cols = act + Int8ActHeaderOffset(n) + sizeof(Int8ActHeader);
  const uint8_t* vals = cols + 4 * static_cast<uint64_t>(n);
  float p[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int32_t k = 0; k < h.count; ++k) {
    int32_t j;
    float v;
    std::memcpy(&j, cols + 4 * static_cast<uint64_t>(k), 4);
    std::memcpy(&v, vals + 4 * static_cast<uint64_t>(k), 4);
    p[k % 4] = p[k % 4] + v * Int8Value(w[j / G].qs[j % G], c);
  }
  return int_part + ((p[0] + p[1]) + (p[2] + p[3]));
}

}  // namespace lowbit

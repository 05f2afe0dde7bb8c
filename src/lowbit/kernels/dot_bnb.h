// bitsandbytes' 4-bit rows two blocks of 64 at a time (NF4G64x2 / FP4G64x2, numeric/bnb.h
// BlockNFx2) against int16 activations: the kernels' contract and its scalar reference.
//
// Why int16: a float dot of 4-bit codes spends, per 64 codes, four level lookups (vpermps, 16
// lanes) and four FMAs, all on the same two vector pipes of an AMD Zen 4 core: ~14 GB/s of weights
// a core, about half of what one core reads from memory (docs/PERFORMANCE.md). With the levels as
// int16 (level * 16383, rounded) and the activations as int16 per block of 64 (x * 16383 / absmax,
// rounded), one vpermw looks up 32 levels and one vpdpwssd multiplies and adds 32 products exactly.
// The error this adds is below bitsandbytes' own: it multiplies in the compute dtype (fp16 / bf16,
// relative error 2^-11 / 2^-8 per product), where here an activation is off by at most 1/32766 of
// its block's absmax and a level by 1/32766 of the weight block's absmax.
//
// The activation row (ActTypeFor = I16; QuantizeActivations makes it): n int16 codes q in the
// order the kernels read them, then n / 64 fp32 scales. Element e of each 128 (e = 64 b + 16 k + 2 i
// + h, b < 2, k < 4, i < 8, h < 2) sits at q[32 k + 4 i + 2 b + h] of that 128: the k-th 32 codes
// match the codes' nibble k of the weight block's 32 words (numeric/bnb.h). Block b's scale
// s = (absmax / 16383) / 16383 carries the levels' 1 / 16383 too; an all-zero block has s = 0.
//
// The float order (every table keeps it, so all are bit-equal to the reference): 16 lane sums
// acc[j] = 0. Per 128 elements u, lane j belongs to block b = j % 2 and sums exactly, in int32,
// isum_j = sum over k < 4, h < 2 of level16[code of word 2 j + h, nibble k] * q[128 u + 32 k + 2 j + h]
// (8 products of at most 16383^2: |isum| < 2^31); then acc[j] = fma(float(isum_j) * d_b, s_b,
// acc[j]), d_b the weight block's absmax. At the end the 16 sums combine as the other bitsandbytes
// kernels' (dot_bnb.cc Reduce16).
#pragma once

#include <array>
#include <cstdint>

#include "lowbit/numeric/bnb.h"

namespace lowbit {

inline constexpr int kBnbAct16Max = 16383;  // |activation code| and |level code| are at most this

// Bnb4Levels(t) * 16383, rounded to nearest (even on ties).
const std::array<int16_t, 16>& Bnb4Levels16(Bnb4Type t);

// Round to nearest even by adding and taking off 1.5 * 2^23 (|x * id| <= 16383): one float add each
// way, the same bits as nearbyint in the default rounding mode, and no library call per element.
inline constexpr float kBnbAct16Round = 12582912.0f;

// A block of 64 activations with absmax amax: the multiplier id of its codes (x * id, then rounded)
// and, returned, its scale as the row stores it (every quantizer's, scalar or SIMD, is this one).
inline float BnbAct16Scale(float amax, float* id) {
  constexpr auto kMax = static_cast<float>(kBnbAct16Max);
  *id = amax > 0.0f ? kMax / amax : 0.0f;
  return amax / kMax / kMax;
}

inline uint64_t BnbAct16ScalesOffset(int64_t n) { return 2 * static_cast<uint64_t>(n); }
inline uint64_t BnbAct16RowBytes(int64_t n) {
  return (BnbAct16ScalesOffset(n) + 4 * static_cast<uint64_t>(n / 64) + 63) / 64 * 64;
}

// The activation row above from x[0, n) (n a multiple of 128), or from x[x_map[i]] (0 where
// x_map[i] < 0) when x_map is not null.
void QuantizeBnbAct16(const float* x, const int32_t* x_map, uint8_t* out, int64_t n);
// The same for the 128 elements of unit u alone (the row's elements [128 u, 128 u + 128) at xu).
void QuantizeBnbAct16Unit(const float* xu, uint8_t* out, int64_t n, int64_t u);

}  // namespace lowbit

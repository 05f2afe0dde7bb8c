// Round-to-nearest with given block scales, for the formats whose scale is free (one fp16 d per
// block of 32, levels L * d): the block's d is rounded to fp16 and stored, and each element gets the
// level nearest to x / d, clamped to the format's range. QAT's learned step sizes (LSQ,
// train/fake_quant.h) write their files with these. d[b] is block b's scale.
#pragma once

#include <cstdint>

namespace lowbit {

void QuantizeQ4_0WithScales(const float* x, const float* d, void* dst, int64_t n);   // L in -8..7
void QuantizeQ5_0WithScales(const float* x, const float* d, void* dst, int64_t n);   // L in -16..15
void QuantizeQ8_0WithScales(const float* x, const float* d, void* dst, int64_t n);   // L in -127..127
void QuantizeIQ4_NLWithScales(const float* x, const float* d, void* dst, int64_t n); // L in kvalues_iq4nl

}  // namespace lowbit

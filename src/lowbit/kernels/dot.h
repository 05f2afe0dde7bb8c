// Row dot products dot(W[r, :], x) on weights in their stored type, one table per ISA, chosen once.
//
// The reference table dequantizes a row with the bit-exact dequantizer and dots in F32 (8 partial
// sums); it covers every readable type. The AVX2 table computes straight from the blocks (F32, F16,
// Q8_0, Q4_0 so far, F32 activations, FMA); types it lacks fall back to the reference entry. Results
// differ from the reference only by summation order and FMA rounding: tests bound the difference by
// 1e-5 of sum |w x|.
#pragma once

#include <cstdint>

#include "lowbit/base/cpu_features.h"
#include "lowbit/numeric/ggml_type.h"

namespace lowbit {

using DotRowFn = float (*)(const uint8_t* row, const float* x, int64_t n);

inline constexpr int kMaxTypeId = 43;

struct DotKernels {
  DotRowFn row[kMaxTypeId] = {};
  DotRowFn For(GgmlType t) const { return row[static_cast<uint32_t>(t)]; }
};

const DotKernels& DotKernelsFor(Isa isa);
const DotKernels& ActiveDotKernels();  // for ActiveIsa(), picked on first use

namespace internal {
void FillRefDotKernels(DotKernels* k);
void FillAvx2DotKernels(DotKernels* k);  // overrides the entries it has
}  // namespace internal

}  // namespace lowbit

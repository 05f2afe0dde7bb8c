// Dequantization (to_float): the scalar reference for every weight type lowbit reads, bit-exact
// with ggml's dequantizers (checked against ../shared/golden/quant-golden.gguf). Float operations
// are done in the same order as ggml's reference code, without FMA contraction (ISO C++ mode), so
// results match bit for bit; SIMD versions elsewhere are tested against these.
#pragma once

#include <cstdint>

#include "lowbit/numeric/ggml_type.h"

namespace lowbit {

// Converts `n` elements (a multiple of the type's block size) from `src` to floats.
using ToFloatFn = void (*)(const void* src, float* dst, int64_t n);

// nullptr for types without a dequantizer (Q8_1, Q8_K, MXFP4, NVFP4, Q1_0, Q2_0, I8..I64).
ToFloatFn ToFloatFor(GgmlType type);

// Convenience: dequantize; returns false when the type has no dequantizer.
bool DequantizeRow(GgmlType type, const void* src, float* dst, int64_t n);

}  // namespace lowbit

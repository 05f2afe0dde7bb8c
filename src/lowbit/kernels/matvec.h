// Matrix-vector products on weights of any type (reference path): y[r] = dot(W[r, :], x).
//
// W is row-major in its GGUF type (each row `cols` values, a whole number of blocks). F32 rows are
// dotted directly; other types are dequantized one row at a time into per-thread scratch with the
// bit-exact reference dequantizer and then dotted. This is the scalar truth that the SIMD kernels
// of later work are tested against; rows are split over the thread pool.
#pragma once

#include <cstdint>

#include "lowbit/base/thread_pool.h"
#include "lowbit/numeric/ggml_type.h"

namespace lowbit {

// Dot product with 8 independent partial sums (vectorizable without reassociating).
float Dot(const float* a, const float* b, int64_t n);

void MatVecRef(GgmlType type, const uint8_t* w, int64_t rows, int64_t cols, const float* x, float* y,
               ThreadPool* pool);

// Row `r` of W as floats.
void DequantizeRowOf(GgmlType type, const uint8_t* w, int64_t cols, int64_t r, float* out);

}  // namespace lowbit

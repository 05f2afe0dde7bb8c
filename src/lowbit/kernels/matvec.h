// Matrix-vector products on weights of any type: y[r] = dot(W[r, :], x), W row-major in its GGUF
// type. Each row goes through the active ISA's row dot product (kernels/dot.h); rows are split over
// the thread pool for large matrices.
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

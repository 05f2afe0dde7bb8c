#include "lowbit/kernels/matvec.h"

#include <vector>

#include "lowbit/base/check.h"
#include "lowbit/kernels/dot.h"
#include "lowbit/numeric/dequant.h"

namespace lowbit {

float Dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) acc[k] += a[i + k] * b[i + k];
  }
  for (; i < n; ++i) acc[0] += a[i] * b[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

void DequantizeRowOf(GgmlType type, const uint8_t* w, int64_t cols, int64_t r, float* out) {
  const uint64_t row_bytes = *RowBytes(type, static_cast<uint64_t>(cols));
  ToFloatFn f = ToFloatFor(type);
  LOWBIT_CHECK_MSG(f != nullptr, "no dequantizer for {}", TypeInfo(type).name);
  f(w + static_cast<uint64_t>(r) * row_bytes, out, cols);
}

void MatVecRef(GgmlType type, const uint8_t* w, int64_t rows, int64_t cols, const float* x, float* y,
               ThreadPool* pool) {
  const DotRowFn dot = ActiveDotKernels().For(type);
  LOWBIT_CHECK_MSG(dot != nullptr, "no dot product for {}", TypeInfo(type).name);
  const uint64_t row_bytes = *RowBytes(type, static_cast<uint64_t>(cols));
  auto run = [&](size_t begin, size_t end) {
    for (size_t r = begin; r < end; ++r) y[r] = dot(w + r * row_bytes, x, cols);
  };
  // Small products are faster on one thread than handed out (measured: stories5M's 256x768).
  if (pool == nullptr || rows * cols < (int64_t{1} << 18)) run(0, static_cast<size_t>(rows));
  else pool->ParallelFor(static_cast<size_t>(rows), run, 16);
}

}  // namespace lowbit

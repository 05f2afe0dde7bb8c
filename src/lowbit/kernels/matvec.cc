#include "lowbit/kernels/matvec.h"

#include <vector>

#include "lowbit/base/check.h"
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
  auto run = [&](size_t begin, size_t end) {
    if (type == GgmlType::kF32) {
      const auto* wf = reinterpret_cast<const float*>(w);
      for (size_t r = begin; r < end; ++r) y[r] = Dot(wf + r * static_cast<size_t>(cols), x, cols);
      return;
    }
    thread_local std::vector<float> row;  // grows once per thread, then reused
    if (row.size() < static_cast<size_t>(cols)) row.resize(cols);
    for (size_t r = begin; r < end; ++r) {
      DequantizeRowOf(type, w, cols, static_cast<int64_t>(r), row.data());
      y[r] = Dot(row.data(), x, cols);
    }
  };
  // Small products are faster on one thread than handed out (measured: stories5M's 256x768).
  if (pool == nullptr || rows * cols < (int64_t{1} << 18)) run(0, static_cast<size_t>(rows));
  else pool->ParallelFor(static_cast<size_t>(rows), run, 16);
}

}  // namespace lowbit

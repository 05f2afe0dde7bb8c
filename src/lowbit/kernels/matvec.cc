#include "lowbit/kernels/matvec.h"

#include <algorithm>

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

void MatMul(const DotKernels& k, const MatMulArgs& a, ThreadPool* pool, MatMulScratch* scratch) {
  const VecDotFn dot = k.For(a.type);
  const VecDot4Fn dot4 = k.For4(a.type);
  const Gemm8Fn eight_rows = a.batch >= 8 ? k.ForGemm8(a.type) : a.batch == 1 ? k.ForRows8(a.type) : nullptr;
  LOWBIT_CHECK_MSG(dot != nullptr, "no dot product for {}", TypeInfo(a.type).name);
  const uint64_t row_bytes = a.row_stride != 0 ? a.row_stride : *RowBytes(a.type, static_cast<uint64_t>(a.cols));
  const uint64_t act_bytes = ActRowBytes(a.type, a.cols);
  uint8_t* act = scratch->Get(act_bytes * static_cast<uint64_t>(a.batch));
  // Small products are faster on one thread than handed out (measured: stories5M's 256x768).
  const bool threaded = pool != nullptr && pool->size() > 1 && a.rows * a.cols * a.batch >= (int64_t{1} << 18);
  auto quantize = [&](size_t b0, size_t b1) {
    for (size_t b = b0; b < b1; ++b) QuantizeActivations(k, a.type, a.x + b * a.cols, act + b * act_bytes, a.cols);
  };
  if (threaded && a.batch > 1) pool->ParallelFor(static_cast<size_t>(a.batch), quantize, 1);
  else quantize(0, static_cast<size_t>(a.batch));

  constexpr int64_t kTokenTile = 16;
  auto run = [&](size_t r0, size_t r1) {
    // Groups of 8 rows: the prefill GEMM (all tokens per call, the rows repacked once per call) or
    // the one-token kernel that reads the 8 rows in place.
    if (eight_rows != nullptr) {
      for (; r0 + 8 <= r1; r0 += 8) eight_rows(a.w + r0 * row_bytes, row_bytes, a.cols, act, act_bytes, a.batch, a.y + r0, a.rows);
    }
    for (int64_t b0 = 0; b0 < a.batch; b0 += kTokenTile) {
      const int64_t b1 = std::min(a.batch, b0 + kTokenTile);
      for (size_t r = r0; r < r1; ++r) {
        const uint8_t* wr = a.w + r * row_bytes;
        int64_t b = b0;
        if (dot4 != nullptr) {
          for (; b + 4 <= b1; b += 4) {
            float out[4];
            dot4(wr, act + b * act_bytes, act_bytes, a.cols, out);
            for (int t = 0; t < 4; ++t) a.y[(b + t) * a.rows + static_cast<int64_t>(r)] = out[t];
          }
        }
        for (; b < b1; ++b) a.y[b * a.rows + static_cast<int64_t>(r)] = dot(wr, act + b * act_bytes, a.cols);
      }
    }
  };
  if (!threaded) run(0, static_cast<size_t>(a.rows));
  else if (a.batch > 1) pool->ParallelFor(static_cast<size_t>(a.rows), run, 8);
  else pool->ParallelFor(static_cast<size_t>(a.rows), run, static_cast<size_t>((a.rows + pool->size() - 1) / pool->size() + 7) / 8 * 8);
}

void MatMul(const MatMulArgs& a, ThreadPool* pool, MatMulScratch* scratch) { MatMul(ActiveDotKernels(), a, pool, scratch); }

}  // namespace lowbit

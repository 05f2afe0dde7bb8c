#include "lowbit/kernels/matvec.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "lowbit/base/check.h"
#include "lowbit/kernels/softmax.h"
#include "lowbit/numeric/dequant.h"
#include "lowbit/numeric/interleave.h"

namespace lowbit {

float Dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) acc[k] = std::fma(a[i + k], b[i + k], acc[k]);
  }
  for (; i < n; ++i) acc[0] = std::fma(a[i], b[i], acc[0]);
  return softmax::Combine8(acc);
}

void DequantizeRowOf(GgmlType type, const uint8_t* w, int64_t cols, int64_t r, float* out, uint64_t row_stride) {
  if (IsInterleaved(type)) {  // the row's blocks back in the file type, then its dequantizer
    const GgmlType stored = StoredTypeOf(type);
    const uint64_t bytes = *RowBytes(stored, static_cast<uint64_t>(cols));
    LOWBIT_CHECK_MSG(row_stride == 0 || row_stride == bytes, "{} rows are packed", TypeInfo(type).name);
    thread_local std::vector<uint8_t> row;
    row.resize(bytes);
    UninterleaveRow(type, w, cols, r, row.data());
    ToFloatFor(stored)(row.data(), out, cols);
    return;
  }
  const uint64_t row_bytes = row_stride != 0 ? row_stride : *RowBytes(type, static_cast<uint64_t>(cols));
  ToFloatFn f = ToFloatFor(type);
  LOWBIT_CHECK_MSG(f != nullptr, "no dequantizer for {}", TypeInfo(type).name);
  f(w + static_cast<uint64_t>(r) * row_bytes, out, cols);
}

size_t DecodeGrain(int64_t rows, int threads) {
  // About 16 chunks per thread, whole groups of 8 rows. One chunk per thread (a static split) left
  // a thread waiting whenever the other ran late, and a wait past the pool's spin sleeps on a futex:
  // perf of a 2-thread TinyLlama Q4_0 decode put the spin and wake-up at 15% of samples with halves
  // and 5% with 16 chunks per thread (docs/PERFORMANCE.md, "Decode work split"). The callers pass a
  // min_grain of 8 so that a region's last chunks shrink to 8 rows: with whole chunks to the end, the
  // thread that finished first waited out the other's last one, ~3% of the threads' time in a
  // 2-thread TinyLlama decode (~1% with the shrinking tail; docs/PERFORMANCE.md, tenth engine session).
  const int64_t chunks = int64_t{16} * threads;
  return static_cast<size_t>(std::max<int64_t>(8, (rows + chunks - 1) / chunks + 7) / 8 * 8);
}

namespace {

// One product with its kernels chosen and its activations converted.
struct Prepared {
  const MatMulArgs* a = nullptr;
  VecDotFn dot = nullptr;
  VecDot4Fn dot4 = nullptr;
  Gemm8Fn eight_rows = nullptr;  // the prefill GEMM or the one-token kernel, both 8 rows at a time
  Gemm16Fn sixteen_rows = nullptr;  // the prefill GEMM on 16 rows, where the table has one
  Gemm8LayoutFn layout = nullptr;  // the prefill GEMM's activation layout, if it has its own
  uint64_t row_bytes = 0, act_bytes = 0;
  uint8_t* act = nullptr;
  uint8_t* act8 = nullptr;  // what eight_rows reads: act, or act in its layout
};

Prepared Prepare(const DotKernels& k, const MatMulArgs& a) {
  Prepared p;
  p.a = &a;
  p.dot = k.For(a.type);
  p.dot4 = k.For4(a.type);
  // Below the GEMM's threshold rows8 (for any token count, bit-equal to the reference), where the
  // table has it; else dot4 / dot.
  const bool gemm = k.TakesGemm(a.type, a.batch, a.batch_invariant);
  p.eight_rows = gemm ? k.ForGemm8(a.type) : k.ForRows8(a.type);
  if (gemm) {
    p.sixteen_rows = k.ForGemm16(a.type);
    p.layout = k.ForGemm8Layout(a.type);
  }
  // An interleaved type has only rows8 (its rows are whole groups of 8; MatMul never calls a dot).
  LOWBIT_CHECK_MSG(p.dot != nullptr || (p.eight_rows != nullptr && a.rows % 8 == 0), "no dot product for {}", TypeInfo(a.type).name);
  p.row_bytes = a.row_stride != 0 ? a.row_stride : *RowBytes(a.type, static_cast<uint64_t>(a.cols));
  p.act_bytes = ActRowBytes(a.type, a.cols);
  return p;
}

// Tokens [b0, b1): converted, then (b0 even) rearranged for the GEMM if it has a layout.
void QuantizeTokens(const DotKernels& k, const Prepared& p, size_t b0, size_t b1) {
  const MatMulArgs& a = *p.a;
  const uint64_t x_stride = static_cast<uint64_t>(a.x_stride != 0 ? a.x_stride : a.cols);
  for (size_t b = b0; b < b1; ++b) QuantizeActivations(k, a.type, a.x + b * x_stride, a.x_map, p.act + b * p.act_bytes, a.cols, a.outlier_threshold);
  if (p.layout != nullptr) {
    p.layout(p.act + b0 * p.act_bytes, p.act_bytes, p.a->cols, static_cast<int64_t>(b1 - b0), p.act8 + b0 * p.act_bytes);
  }
}

// Rows [r0, r1) of one product for all its tokens.
void RunRows(const Prepared& p, size_t r0, size_t r1) {
  constexpr int64_t kTokenTile = 16;
  const MatMulArgs& a = *p.a;
  if (p.sixteen_rows != nullptr) {
    for (; r0 + 16 <= r1; r0 += 16) p.sixteen_rows(a.w + r0 * p.row_bytes, p.row_bytes, a.cols, p.act8, p.act_bytes, a.batch, a.y + r0, a.rows);
  }
  if (p.eight_rows != nullptr) {
    for (; r0 + 8 <= r1; r0 += 8) p.eight_rows(a.w + r0 * p.row_bytes, p.row_bytes, a.cols, p.act8, p.act_bytes, a.batch, a.y + r0, a.rows);
  }
  for (int64_t b0 = 0; b0 < a.batch; b0 += kTokenTile) {
    const int64_t b1 = std::min(a.batch, b0 + kTokenTile);
    for (size_t r = r0; r < r1; ++r) {
      const uint8_t* wr = a.w + r * p.row_bytes;
      int64_t b = b0;
      if (p.dot4 != nullptr) {
        for (; b + 4 <= b1; b += 4) {
          float out[4];
          p.dot4(wr, p.act + b * p.act_bytes, p.act_bytes, a.cols, out);
          for (int t = 0; t < 4; ++t) a.y[(b + t) * a.rows + static_cast<int64_t>(r)] = out[t];
        }
      }
      for (; b < b1; ++b) a.y[b * a.rows + static_cast<int64_t>(r)] = p.dot(wr, p.act + b * p.act_bytes, a.cols);
    }
  }
}

// Small products are faster on one thread than handed out (measured: stories5M's 256x768).
bool Threaded(const ThreadPool* pool, int64_t work) { return pool != nullptr && pool->size() > 1 && work >= kMinThreadedWork; }

}  // namespace

void MatMul(const DotKernels& k, const MatMulArgs& a, ThreadPool* pool, MatMulScratch* scratch) {
  Prepared p = Prepare(k, a);
  const uint64_t act_total = p.act_bytes * static_cast<uint64_t>(a.batch);
  p.act = scratch->Get(p.layout != nullptr ? 2 * act_total : act_total);
  p.act8 = p.layout != nullptr ? p.act + act_total : p.act;
  const bool threaded = Threaded(pool, a.rows * a.cols * a.batch);
  // By pairs of tokens (a layout interleaves pairs).
  const size_t pairs = (static_cast<size_t>(a.batch) + 1) / 2;
  auto quantize = [&](size_t q0, size_t q1) { QuantizeTokens(k, p, 2 * q0, std::min(2 * q1, static_cast<size_t>(a.batch))); };
  if (threaded && a.batch > 1) pool->ParallelFor(pairs, quantize, 1);
  else quantize(0, pairs);

  auto run = [&](size_t r0, size_t r1) { RunRows(p, r0, r1); };
  if (!threaded) run(0, static_cast<size_t>(a.rows));
  else if (a.batch > 1) pool->ParallelFor(static_cast<size_t>(a.rows), run, p.sixteen_rows != nullptr ? 16 : 8);
  else pool->ParallelFor(static_cast<size_t>(a.rows), run, DecodeGrain(a.rows, pool->size()), 8);
}

void MatMulGroup(const DotKernels& k, std::span<const MatMulArgs> group, ThreadPool* pool, MatMulScratch* scratch) {
  LOWBIT_CHECK_MSG(group.size() <= kMaxMatMulGroup, "{} products in one group, at most {}", group.size(), kMaxMatMulGroup);
  int64_t work = 0;
  bool decode = true;  // every product on the 8-row decode kernels or the dots
  for (const MatMulArgs& a : group) {
    work += a.rows * a.cols * a.batch;
    decode = decode && a.batch <= kMaxDecodeStep && !k.TakesGemm(a.type, a.batch, a.batch_invariant);
  }
  if (!decode || !Threaded(pool, work)) {
    for (const MatMulArgs& a : group) MatMul(k, a, pool, scratch);
    return;
  }
  // A decode step (one token, or the few of a serving step or a speculative check): every product's activations converted
  // on this thread (a few microseconds a token), then the products' rows handed out as one range:
  // one wait instead of one per product, and no thread idles at the end of a small product. Each
  // product starts on a multiple of 8 in that range and the grain is a multiple of 8, so no chunk
  // splits a group of 8 rows; indices in the padding between products run nothing.
  Prepared p[kMaxMatMulGroup];
  size_t start[kMaxMatMulGroup + 1];
  uint64_t act_total = 0;
  size_t rows_total = 0;
  for (size_t i = 0; i < group.size(); ++i) {
    p[i] = Prepare(k, group[i]);
    // act_bytes is a multiple of 64 (ActRowBytes), so every product's rows stay aligned.
    act_total += p[i].act_bytes * static_cast<uint64_t>(group[i].batch);
    start[i] = rows_total;
    rows_total += (static_cast<size_t>(group[i].rows) + 7) / 8 * 8;
  }
  start[group.size()] = rows_total;
  uint8_t* act = scratch->Get(act_total);
  for (size_t i = 0; i < group.size(); ++i) {
    // Products on the same input whose weight types take the same activation type (a layer's Q/K/V,
    // its gate/up) share one conversion: it is a function of x, x_map, cols and that type only.
    auto same_input = [&](const MatMulArgs& u, const MatMulArgs& v) {
      return u.x == v.x && u.x_map == v.x_map && u.cols == v.cols && u.x_stride == v.x_stride && u.batch == v.batch &&
             ActTypeFor(u.type) == ActTypeFor(v.type) && u.outlier_threshold == v.outlier_threshold;
    };
    size_t j = 0;
    while (j < i && !same_input(group[j], group[i])) ++j;
    if (j < i) {
      p[i].act = p[i].act8 = p[j].act;
      continue;
    }
    p[i].act = p[i].act8 = act;
    act += p[i].act_bytes * static_cast<uint64_t>(group[i].batch);
    QuantizeTokens(k, p[i], 0, static_cast<size_t>(group[i].batch));
  }
  auto run = [&](size_t begin, size_t end) {
    for (size_t i = 0; i < group.size() && begin < end; ++i) {
      if (begin >= start[i + 1]) continue;
      const size_t rows = static_cast<size_t>(group[i].rows);
      const size_t r0 = begin - start[i], r1 = std::min(end, start[i + 1]) - start[i];
      if (r0 < rows) RunRows(p[i], r0, std::min(r1, rows));
      begin = start[i + 1];
    }
  };
  pool->ParallelFor(rows_total, run, DecodeGrain(static_cast<int64_t>(rows_total), pool->size()), 8);
}

void MatMul(const MatMulArgs& a, ThreadPool* pool, MatMulScratch* scratch) { MatMul(ActiveDotKernels(), a, pool, scratch); }

void MatMulGroup(std::span<const MatMulArgs> group, ThreadPool* pool, MatMulScratch* scratch) {
  MatMulGroup(ActiveDotKernels(), group, pool, scratch);
}

}  // namespace lowbit

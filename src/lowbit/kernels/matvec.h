// Matrix products on weights of any type: Y[b, r] = dot(W[r, :], X[b, :]) for b < batch, W row-major
// in its GGUF type (rows = outputs, cols = inputs). batch == 1 is the decode matrix-vector product;
// batch > 1 is prefill.
//
// The activations are converted once into the weight type's activation type (kernels/dot.h), then
// the weight rows are split across the thread pool. Each thread runs a block of rows against tiles
// of tokens, so a weight row is read from memory once per tile of tokens, not once per token.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "lowbit/base/aligned_buffer.h"
#include "lowbit/base/thread_pool.h"
#include "lowbit/kernels/dot.h"
#include "lowbit/numeric/ggml_type.h"

namespace lowbit {

// Dot product with 8 independent partial sums (vectorizable without reassociating), each one a
// chain of fused multiply-adds (std::fma; every x86 table that runs float weights has FMA), combined
// as softmax::Combine8. The contract of every float product: the float weights' kernels in every
// table and the attention scores give its bits.
float Dot(const float* a, const float* b, int64_t n);

// Memory for the converted activations; grows on first use, then is reused (no allocation after).
class MatMulScratch {
 public:
  uint8_t* Get(size_t bytes) {
    if (buf_.size() < bytes) buf_.Resize(bytes);
    return buf_.data();
  }
  size_t size() const { return buf_.size(); }  // bytes held

 private:
  AlignedBuffer buf_;
};

struct MatMulArgs {
  GgmlType type = GgmlType::kF32;
  const uint8_t* w = nullptr;
  int64_t rows = 0, cols = 0;
  uint64_t row_stride = 0;   // bytes from one row to the next; 0: packed (RowBytes of cols)
  const float* x = nullptr;  // [batch][x_stride]
  // The input map (length cols; nullptr: identity): weight column i reads input column x_map[i] of
  // each row of x, or 0 where x_map[i] < 0. Gathered once per product while the activations are
  // converted (QuantizeActivations with a map), so a mapped product costs what a plain one does.
  // Uses: act-order weights stored with their columns sorted by group (the map undoes the sort),
  // rows padded to whole blocks (-1 for the padding), a tensor-parallel shard's own columns.
  const int32_t* x_map = nullptr;
  int64_t x_stride = 0;      // floats from one row of x to the next; 0: cols (with a map: the input's width)
  int64_t batch = 1;
  float* y = nullptr;        // [batch][rows]
  // Every row's result independent of `batch` (continuous batching: a sequence's tokens get the
  // same logits whatever else shares the step). Where the table has a rows8 kernel (bit-equal to the
  // reference, as its gemm8 is) it serves every batch below the type's GemmFrom and any batch without
  // a gemm8; a type without one never takes the gemm8 (its dot and dot4 agree with each other, not
  // with gemm8).
  bool batch_invariant = false;
  // LLM.int8 weights (I8R32, I8R256): input columns whose |x| reaches this are multiplied in float,
  // per token (kernels/dot_int8.h); 0: plain int8 x int8. Other types ignore it.
  float outlier_threshold = 0.0f;
};

// Products of fewer multiply-adds (rows x cols x batch, summed over a group) run on the calling
// thread: handing them out costs more than it saves (measured: stories5M's 256x768). The cost model
// (eval/cost_model.h) times them so.
inline constexpr int64_t kMinThreadedWork = int64_t{1} << 18;

// With the given kernel table (tests and benchmarks compare ISAs) or the active one.
void MatMul(const DotKernels& k, const MatMulArgs& a, ThreadPool* pool, MatMulScratch* scratch);
void MatMul(const MatMulArgs& a, ThreadPool* pool, MatMulScratch* scratch);

// The most tokens a product of a decode step has in MatMulGroup's one hand-off (below the GEMM's
// threshold, DotKernels::TakesGemm): a serving step's streams, a speculative check's drafts.
inline constexpr int64_t kMaxDecodeStep = 16;

// Several products in one hand-off to the pool, each with its own weights, input and output (a
// layer's Q, K and V, or its gate and up projections). For a decode step (every product on the 8-row
// kernels or the dots, at most kMaxDecodeStep tokens: one token, or a serving step's few) the rows of all of them are split across
// the threads as one range: one wait instead of one per product, and no thread idles at the end of
// a small product; products on the same input (x, x_map, batch) whose weight types take the same
// activation type share one conversion. Otherwise (prefill, one thread) the products run one by one.
inline constexpr size_t kMaxMatMulGroup = 32;
void MatMulGroup(const DotKernels& k, std::span<const MatMulArgs> group, ThreadPool* pool, MatMulScratch* scratch);
void MatMulGroup(std::span<const MatMulArgs> group, ThreadPool* pool, MatMulScratch* scratch);

// Rows per chunk of a threaded one-token product: a multiple of 8 (the 8-row kernels), small enough
// that the threads balance dynamically.
size_t DecodeGrain(int64_t rows, int threads);

// Row `r` of W as floats; its rows `row_stride` bytes apart (0: packed, RowBytes of cols).
void DequantizeRowOf(GgmlType type, const uint8_t* w, int64_t cols, int64_t r, float* out, uint64_t row_stride = 0);

}  // namespace lowbit

// GPTQ's Hessian of one linear layer: H = 2/n X^T X over the n calibration rows (tokens) that reach
// the layer's input, accumulated batch by batch as they arrive (AutoGPTQ / GPTQModel add_batch: H
// is kept as the running mean, rescaled by n_old / n_new before each batch is added, and the batch
// enters scaled by sqrt(2 / n_new)). n counts token rows, as GPTQModel does (AutoGPTQ counts
// sequences, which scales H by the sequence length and changes nothing GPTQ computes from it).
//
// The product runs on the thread pool in chunks of kChunk rows packed into 32-column panels, over
// the upper triangle's 32 x 32 tiles; each chunk's sums start from zero and are added to H once
// (fp32 throughout, as the tools). Up to kPassBytes of packed chunks go to the pool at once (narrow
// layers would otherwise hand the pool a few microseconds of work per chunk). Same bits for any ISA,
// thread count and batch split into passes (linalg.h). Batches below ~128 rows waste time: H is
// rescaled and reloaded per batch.
#pragma once

#include <cstdint>
#include <vector>

#include "lowbit/base/thread_pool.h"

namespace lowbit {

class HessianAccumulator {
 public:
  static constexpr int64_t kChunk = 128;
  static constexpr int64_t kPassBytes = 8 << 20;

  explicit HessianAccumulator(int64_t cols);

  // Adds the n rows x[r * ld + c], c < cols. A batch of 0 rows changes nothing.
  void AddBatch(const float* x, int64_t n, int64_t ld, ThreadPool* pool);

  int64_t cols() const { return cols_; }
  int64_t nsamples() const { return nsamples_; }
  double flops() const { return flops_; }  // multiply-adds x 2 done so far (the upper triangle)

  // H [cols][cols] (symmetric, both triangles filled); the accumulator is left empty.
  std::vector<float> Finish(ThreadPool* pool);

 private:
  int64_t cols_;
  int64_t nsamples_ = 0;
  double flops_ = 0;
  std::vector<float> h_;       // [cols][cols]; the upper triangle is maintained
  std::vector<float> panels_;  // one chunk, packed
};

}  // namespace lowbit

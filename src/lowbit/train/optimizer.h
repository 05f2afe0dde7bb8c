// Trainable parameters and the optimizer: AdamW (decoupled weight decay, bias-corrected moments)
// with a linear warmup then cosine decay of the learning rate, gradient clipping by the global L2
// norm, and a finiteness check that names the first tensor whose gradient is not finite.
//
// Gradients accumulate over the micro-batches of a step (the losses are scaled by 1 / tokens of
// the step), so a step over any number of micro-batches is the mean over its tokens.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/base/thread_pool.h"

namespace lowbit::train {

struct Param {
  std::string name;          // GGUF tensor name (or an adapter's tensor name)
  int64_t rows = 1, cols = 0;
  std::vector<float> value, grad, m, v;
  bool decay = true;         // weight decay applies (2-D weights; not norms or biases)

  Param() = default;
  Param(std::string n, int64_t r, int64_t c, bool wd);
  int64_t size() const { return rows * cols; }
};

struct AdamWOptions {
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  float weight_decay = 0.0f;
};

// Learning rate at `step` (0-based) of `total`: linear from lr/warmup up to lr over `warmup`
// steps, then cosine down to lr * min_ratio at the last step.
float ScheduledLr(int64_t step, int64_t total, int64_t warmup, float lr, float min_ratio);

// sqrt(sum of squared gradient entries) over all params; NaN or infinity if any entry is.
double GradNorm(const std::vector<Param*>& params, ThreadPool* pool);
// The first param whose gradient holds a NaN or an infinity, or nullptr.
const Param* FirstNonFiniteGrad(const std::vector<Param*>& params);
// Multiplies every gradient by s.
void ScaleGrads(const std::vector<Param*>& params, float s, ThreadPool* pool);
void ZeroGrads(const std::vector<Param*>& params, ThreadPool* pool);

// One AdamW update of every param at step t (1-based, for the bias correction).
void AdamWStep(const std::vector<Param*>& params, const AdamWOptions& o, float lr, int64_t t, ThreadPool* pool);

}  // namespace lowbit::train

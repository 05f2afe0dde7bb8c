// The training loop shared by QAT and fine-tuning: steps of `batch` sequences, run as micro-batches
// whose gradients accumulate; the gradient's global norm clipped; AdamW with a warmup + cosine
// learning rate; a checkpoint every N steps (and at the end); a NaN or infinite loss or gradient
// stops the run with the step and the first tensor whose gradient is not finite named, before the
// optimizer touches the weights, leaving the last checkpoint as it was.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/base/thread_pool.h"
#include "lowbit/train/checkpoint.h"
#include "lowbit/train/optimizer.h"

namespace lowbit::train {

struct TrainConfig {
  int64_t steps = 100;
  int64_t batch = 8;        // sequences per optimizer step
  int64_t micro_batch = 4;  // sequences per forward/backward (bounds the activations' memory)
  int64_t ctx = 256;        // tokens per sequence
  float lr = 1e-3f, min_lr_ratio = 0.1f;
  int64_t warmup = 0;       // steps of linear warmup
  AdamWOptions adam;
  float clip = 1.0f;        // global gradient norm limit; 0: none
  uint64_t seed = 1;
  std::string checkpoint;   // "" : no checkpoints
  int64_t checkpoint_every = 0;  // steps; 0: only at the end
  bool resume = false;      // continue from `checkpoint` when it exists
  CheckpointInfo identity;  // kind and config written to (and checked in) checkpoints
};

struct StepStats {
  int64_t step = 0, steps = 0;     // step just done (1-based) of steps
  double loss = 0;                 // mean over the step's scored tokens
  float lr = 0;
  double grad_norm = 0;            // before clipping
  double tokens_per_s = 0;         // training tokens (forward + backward) per second, this run
  double elapsed_s = 0, eta_s = 0;
  bool checkpointed = false;
};

struct TrainHooks {
  // Before each step's first micro-batch (e.g. re-quantize the fake-quantized weights).
  std::function<void(int64_t step)> before_step;
  // Forward, loss, backward of sequences [first, first + n) of `step`, gradients scaled by
  // grad_scale and added to the params' grads; returns the summed loss and the tokens it scored.
  std::function<Expected<std::pair<double, int64_t>>(int64_t step, int64_t first, int64_t n, float grad_scale)> micro_batch;
  // After a step's last backward, before the norm and the update (e.g. the STE clipping masks).
  std::function<void()> after_backward;
};

// Tokens a step scores (for grad_scale): batch * ctx.
// Returns the number of steps run (from the resumed step to `steps`).
Expected<int64_t> Train(const TrainConfig& c, const std::vector<Param*>& params, const TrainHooks& hooks, ThreadPool* pool,
                        const std::function<void(const StepStats&)>& on_step);

// "1m05s" style.
std::string FormatDuration(double seconds);
// The progress line printed per step: "step 12/400 loss 1.2345 lr 3.0e-04 gnorm 0.81 1523 tok/s 1m05s ETA 5m30s".
std::string FormatStep(const StepStats& s);

}  // namespace lowbit::train

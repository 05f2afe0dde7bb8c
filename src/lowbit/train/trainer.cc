#include "lowbit/train/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>

namespace lowbit::train {

std::string FormatDuration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const auto t = static_cast<int64_t>(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02d}m", t / 3600, (t % 3600) / 60);
  if (t >= 60) return fmt::format("{}m{:02d}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

std::string FormatStep(const StepStats& s) {
  return fmt::format("step {}/{}  loss {:.4f}  lr {:.2e}  gnorm {:.3f}  {:.0f} tok/s  {}  ETA {}{}", s.step, s.steps, s.loss, s.lr,
                     s.grad_norm, s.tokens_per_s, FormatDuration(s.elapsed_s), FormatDuration(s.eta_s),
                     s.checkpointed ? "  (checkpoint)" : "");
}

Expected<int64_t> Train(const TrainConfig& c, const std::vector<Param*>& params, const TrainHooks& hooks, ThreadPool* pool,
                        const std::function<void(const StepStats&)>& on_step) {
  if (c.steps < 1 || c.batch < 1 || c.micro_batch < 1 || c.ctx < 1) return Errorf("steps, batch, micro-batch and context must be positive");
  int64_t start = 0;
  std::error_code ec;
  if (c.resume && !c.checkpoint.empty() && std::filesystem::exists(c.checkpoint, ec)) {
    LOWBIT_ASSIGN_OR_RETURN(CheckpointInfo info, LoadCheckpoint(c.checkpoint, params, c.identity));
    start = info.step;
    if (start >= c.steps) return Errorf("{}: already at step {} of {}; raise --steps to train further", c.checkpoint, start, c.steps);
  }
  const float grad_scale = 1.0f / static_cast<float>(c.batch * c.ctx);
  const auto t0 = std::chrono::steady_clock::now();
  int64_t last_saved = start;
  for (int64_t step = start; step < c.steps; ++step) {
    ZeroGrads(params, pool);
    if (hooks.before_step) hooks.before_step(step);
    double loss = 0;
    int64_t scored = 0;
    for (int64_t first = 0; first < c.batch; first += c.micro_batch) {
      const int64_t n = std::min(c.micro_batch, c.batch - first);
      LOWBIT_ASSIGN_OR_RETURN(auto r, hooks.micro_batch(step, first, n, grad_scale));
      loss += r.first;
      scored += r.second;
    }
    const double mean = scored > 0 ? loss / static_cast<double>(scored) : 0.0;
    const std::string kept = c.checkpoint.empty() || last_saved == 0
                                 ? std::string("no checkpoint was written yet")
                                 : fmt::format("the checkpoint {} (step {}) is kept", c.checkpoint, last_saved);
    if (!std::isfinite(mean)) {
      const Param* bad = FirstNonFiniteGrad(params);
      return Errorf("step {}: the loss is {}{}; stopped ({})", step + 1, mean,
                    bad ? fmt::format(" (first non-finite gradient: {})", bad->name) : std::string(), kept);
    }
    if (hooks.after_backward) hooks.after_backward();
    const double norm = GradNorm(params, pool);
    if (!std::isfinite(norm)) {
      const Param* bad = FirstNonFiniteGrad(params);
      return Errorf("step {}: the gradient of {} is not finite (loss {:.4f}); stopped ({})", step + 1, bad ? bad->name : "?", mean,
                    kept);
    }
    if (c.clip > 0 && norm > c.clip) ScaleGrads(params, static_cast<float>(c.clip / norm), pool);
    const int64_t warmup = std::min(c.warmup, c.steps);
    const float lr = ScheduledLr(step, c.steps, warmup, c.lr, c.min_lr_ratio);
    AdamWStep(params, c.adam, lr, step + 1, pool);
    StepStats s;
    s.step = step + 1;
    s.steps = c.steps;
    s.loss = mean;
    s.lr = lr;
    s.grad_norm = norm;
    const bool last = step + 1 == c.steps;
    if (!c.checkpoint.empty() && (last || (c.checkpoint_every > 0 && (step + 1) % c.checkpoint_every == 0))) {
      CheckpointInfo info = c.identity;
      info.step = step + 1;
      LOWBIT_RETURN_IF_ERROR(SaveCheckpoint(c.checkpoint, params, info));
      last_saved = step + 1;
      s.checkpointed = true;
    }
    s.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto done = static_cast<double>(step + 1 - start);
    s.tokens_per_s = done * static_cast<double>(c.batch * c.ctx) / std::max(1e-9, s.elapsed_s);
    s.eta_s = s.elapsed_s / done * static_cast<double>(c.steps - step - 1);
    if (on_step) on_step(s);
  }
  return c.steps - start;
}

}  // namespace lowbit::train

// AWQ's numeric pieces on plain arrays (AutoAWQ awq/quantize/quantizer.py). The pipeline runs the
// model's sublayers and calls these; nothing here knows a model.
//
//   x_mean (AwqActStats): mean |x| per input channel over the calibration tokens (_search_best_scale
//     step 2).
//   w_mean (AwqWeightMean): the layers that share the input, stacked by rows; per group of
//     group_size columns |w| / (max |w| in the group + 1e-6), averaged over all rows (step 1).
//   scales for a ratio r (AwqScales): s = x_mean^r / (w_mean^(1-r) + 1e-4) (duo scaling) or x_mean^r,
//     clamped at 1e-4, divided by sqrt(max(s) * min(s)); inf/NaN become 1 (_compute_best_scale).
//   the search (AwqSearchScales): r = k / n_grid for k < n_grid (20); the caller's loss(s) is the
//     block output's mean squared error with every scaled weight replaced by Q(W * s) / s
//     (AwqScaledPseudoQuantize); the first smallest loss wins.
//   the clip search (AwqSearchClip, _compute_best_clip): per row and group, max |w| shrunk by
//     (1 - k / n_grid) for k < max_shrink * n_grid (20, 0.5), weights clamped to +-max and
//     pseudo-quantized, error = mean over the sampled tokens of (sum over the group x * (q - w))^2;
//     the tokens are every (n_tokens / 512)-th (at least every one). AwqApplyClip clamps.
// Quantization is AutoAWQ's pseudo_quantize_tensor: the kAwq convention of linear_quant.h, groups
// dividing the row. Deviations (docs/DESIGN-NOTES.md): statistics and products in fp32 (AutoAWQ runs
// them in fp16 on a GPU); scales rounded to fp16 before the codes are chosen only when the spec says
// so (the search uses LinearQuantSpec as given); the clip error is computed from x * (q - w) rather
// than as the difference of two products (the same sum, rounded once).
#pragma once

#include <cstdint>
#include <vector>

#include "lowbit/base/function_ref.h"
#include "lowbit/base/status.h"
#include "lowbit/base/thread_pool.h"
#include "lowbit/quant/linear_quant.h"

namespace lowbit {

// Mean |x| per channel, batch by batch (fp64 sums).
class AwqActStats {
 public:
  explicit AwqActStats(int64_t cols) : sum_(static_cast<size_t>(cols), 0.0) {}
  void AddBatch(const float* x, int64_t n, int64_t ld);
  int64_t count() const { return count_; }
  std::vector<float> Mean() const;

 private:
  std::vector<double> sum_;
  int64_t count_ = 0;
};

struct AwqWeight {
  const float* w;  // [rows][cols]
  int64_t rows;
};
// w_mean [cols] over the stacked layers (all with `cols` columns); group_size must divide cols.
Status AwqWeightMean(const std::vector<AwqWeight>& layers, int64_t cols, int64_t group_size, float* w_mean);

void AwqScales(const float* x_mean, const float* w_mean, int64_t cols, float ratio, bool duo_scaling, float* s);

struct AwqScaleSearch {
  float best_ratio = 0;
  std::vector<float> scales;    // [cols] for best_ratio
  std::vector<double> losses;   // per grid point
};
Expected<AwqScaleSearch> AwqSearchScales(const float* x_mean, const float* w_mean, int64_t cols, bool duo_scaling,
                                         FunctionRef<double(const float* scales)> loss, int n_grid = 20);

// out = Q(W * s) / s per column (s [cols]); W [rows][cols]. out may equal w.
Status AwqScaledPseudoQuantize(const float* w, int64_t rows, int64_t cols, const float* s,
                               const LinearQuantSpec& spec, float* out);

struct AwqClipOptions {
  int n_grid = 20;
  double max_shrink = 0.5;
  int64_t n_sample_tokens = 512;
};
// max_val [rows][n_groups] for W [rows][cols] and the layer's inputs x [n_tokens][cols] (row stride ld).
Expected<std::vector<float>> AwqSearchClip(const float* w, int64_t rows, int64_t cols, const float* x,
                                           int64_t n_tokens, int64_t ld, const LinearQuantSpec& spec,
                                           const AwqClipOptions& options, ThreadPool* pool);
// W = clamp(W, -max_val, max_val) per (row, group).
void AwqApplyClip(float* w, int64_t rows, int64_t cols, int64_t group_size, const float* max_val);

}  // namespace lowbit

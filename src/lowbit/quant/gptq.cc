#include "lowbit/quant/gptq.h"

#include <algorithm>
#include <cmath>

#include "lowbit/quant/gptq_internal.h"

namespace lowbit {

namespace {

inline size_t Z(int64_t v) { return static_cast<size_t>(v); }

// The integer grid as GPTQ's rounding step: (scale, zero) per (group, row).
class IntRounder {
 public:
  IntRounder(const LinearQuantSpec& spec, int64_t rows, int64_t cols, int64_t group, bool fixed,
             const std::vector<int32_t>& perm, uint8_t* codes, std::vector<GroupParams>* params)
      : spec_(spec), rows_(rows), cols_(cols), group_(group), fixed_(fixed), perm_(perm), codes_(codes),
        params_(*params) {}

  // What column i needs, the same for every row: its group, and whether the group starts here.
  struct Column {
    int64_t i, g;
    bool fit;
  };
  Column At(int64_t i) const {
    if (fixed_) return {i, (perm_.empty() ? i : perm_[Z(i)]) / group_, false};
    return {i, i / group_, i % group_ == 0};
  }

  float Quantize(const Column& col, int64_t r, const float* row) {
    const int64_t i = col.i;
    GroupParams& slot = params_[Z(col.g * rows_ + r)];
    if (col.fit) slot = FindGroupParams(row + i, std::min(group_, cols_ - i), spec_);
    const GroupParams p = slot;
    const int code = GroupCode(row[i], p, spec_);
    codes_[r * cols_ + i] = static_cast<uint8_t>(code);
    return GroupValue(code, p, spec_);
  }

 private:
  const LinearQuantSpec& spec_;
  int64_t rows_, cols_, group_;
  bool fixed_;
  const std::vector<int32_t>& perm_;
  uint8_t* codes_;
  std::vector<GroupParams>& params_;
};

}  // namespace

Expected<GptqResult> GptqQuantize(const float* w, int64_t rows, int64_t cols, const GptqHessianFactor& factor,
                                  const GptqOptions& options, ThreadPool* pool, const char* name) {
  const LinearQuantSpec& spec = options.quant;
  if (Status s = ValidateSpec(spec, cols); !s.ok()) return s.WithContext(name);
  if (options.block_size <= 0) return Errorf("{}: GPTQ block size must be positive (got {})", name, options.block_size);
  if (options.act_order != !factor.perm.empty()) {
    return Errorf("{}: act-order is {} but the Hessian factor was made {} it", name, options.act_order ? "on" : "off",
                  factor.perm.empty() ? "without" : "with");
  }
  LOWBIT_ASSIGN_OR_RETURN(std::vector<float> work, gptq_internal::PrepareWeights(w, rows, cols, factor, name));
  GptqResult res;
  res.perm = factor.perm;
  gptq_internal::FactorStats(factor, &res.stats);
  const gptq_internal::PhaseTimer timer;
  const int64_t group = spec.granularity == QuantGranularity::kPerGroup ? std::min(spec.group_size, cols) : cols;
  const int64_t ng = (cols + group - 1) / group;
  // Groups fixed before the loop, in the original column order: per channel and per tensor from W as
  // given (AutoGPTQ's find_params(W) comes before the dead columns are zeroed), static groups from W
  // with the dead columns zeroed (after, in AutoGPTQ).
  const bool fixed = options.static_groups || spec.granularity != QuantGranularity::kPerGroup;
  std::vector<GroupParams> params(Z(ng * rows));
  if (spec.granularity == QuantGranularity::kPerTensor) {
    std::fill(params.begin(), params.end(), FindGroupParams(w, rows * cols, spec));
  } else if (spec.granularity == QuantGranularity::kPerChannel) {
    for (int64_t r = 0; r < rows; ++r) params[Z(r)] = FindGroupParams(w + r * cols, cols, spec);
  } else if (fixed) {
    std::vector<float> g(Z(group));
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t gi = 0; gi < ng; ++gi) {
        const int64_t c0 = gi * group, n = std::min(group, cols - c0);
        for (int64_t k = 0; k < n; ++k) g[Z(k)] = factor.diag[Z(c0 + k)] == 0 ? 0.0f : w[r * cols + c0 + k];
        params[Z(gi * rows + r)] = FindGroupParams(g.data(), n, spec);
      }
    }
  }
  LinearQuantized& q = res.q;
  q.bits = spec.bits;
  q.grid = spec.grid;
  q.rows = rows;
  q.cols = cols;
  q.group_size = group;
  q.codes.resize(Z(rows * cols));
  std::vector<uint8_t> permuted;
  if (!res.perm.empty()) permuted.resize(Z(rows * cols));
  uint8_t* codes = res.perm.empty() ? q.codes.data() : permuted.data();
  IntRounder rounder(spec, rows, cols, group, fixed, res.perm, codes, &params);
  res.stats.loss = gptq_internal::RunColumns(work.data(), rows, cols, factor.u.data(), options.block_size, rounder, pool,
                                             &res.stats);
  q.g_idx.resize(Z(cols));
  for (int64_t i = 0; i < cols; ++i) {
    const int64_t c = res.perm.empty() ? i : res.perm[Z(i)];
    q.g_idx[Z(c)] = static_cast<int32_t>(fixed ? c / group : i / group);
  }
  if (!res.perm.empty()) {
    for (int64_t r = 0; r < rows; ++r) {
      const uint8_t* src = permuted.data() + r * cols;
      uint8_t* dst = q.codes.data() + r * cols;
      for (int64_t i = 0; i < cols; ++i) dst[res.perm[Z(i)]] = src[i];
    }
  }
  q.scales.resize(Z(ng * rows));
  q.zeros.resize(Z(ng * rows));
  for (size_t k = 0; k < params.size(); ++k) {
    q.scales[k] = params[k].scale;
    q.zeros[k] = params[k].zero;
  }
  timer.AddTo(&res.stats.seconds_quantize, &res.stats.cpu_seconds_quantize);
  return res;
}

Expected<GptqResult> GptqQuantize(const float* w, int64_t rows, int64_t cols, std::vector<float> hessian,
                                  const GptqOptions& options, ThreadPool* pool, const char* name) {
  LOWBIT_ASSIGN_OR_RETURN(GptqHessianFactor f, GptqFactorHessian(std::move(hessian), cols, options, pool, name));
  return GptqQuantize(w, rows, cols, f, options, pool, name);
}

}  // namespace lowbit

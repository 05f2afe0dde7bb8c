#include "lowbit/quant/awq.h"

#include <algorithm>
#include <cmath>

#include "lowbit/quant/linalg.h"

namespace lowbit {
namespace {

inline size_t Z(int64_t v) { return static_cast<size_t>(v); }

int64_t GroupOf(const LinearQuantSpec& spec, int64_t cols) {
  return spec.granularity == QuantGranularity::kPerGroup ? spec.group_size : cols;
}

Status CheckAwqSpec(const LinearQuantSpec& spec, int64_t cols) {
  LinearQuantSpec s = spec;
  s.convention = QuantConvention::kAwq;
  LOWBIT_RETURN_IF_ERROR(ValidateSpec(s, cols));
  if (spec.granularity == QuantGranularity::kPerTensor) return Errorf("AWQ quantizes per group or per channel");
  if (spec.grid != QuantGrid::kUniform) return Errorf("AWQ uses the uniform grid");
  return OkStatus();
}

// pseudo_quantize_tensor of one group (n values) into q: the dequantized values.
void PseudoQuantizeGroup(const float* x, int64_t n, const LinearQuantSpec& spec, float* q) {
  const GroupParams p = FindGroupParams(x, n, spec);
  for (int64_t i = 0; i < n; ++i) q[i] = CodeValue(QuantizeCode(x[i], p, spec.maxq()), p);
}

LinearQuantSpec AwqSpec(const LinearQuantSpec& spec) {
  LinearQuantSpec s = spec;
  s.convention = QuantConvention::kAwq;
  return s;
}

}  // namespace

void AwqActStats::AddBatch(const float* x, int64_t n, int64_t ld) {
  const size_t cols = sum_.size();
  for (int64_t t = 0; t < n; ++t) {
    const float* row = x + t * ld;
    for (size_t c = 0; c < cols; ++c) sum_[c] += std::fabs(row[c]);
  }
  count_ += n;
}

std::vector<float> AwqActStats::Mean() const {
  std::vector<float> m(sum_.size(), 0.0f);
  if (count_ == 0) return m;
  for (size_t c = 0; c < sum_.size(); ++c) m[c] = static_cast<float>(sum_[c] / static_cast<double>(count_));
  return m;
}

Status AwqWeightMean(const std::vector<AwqWeight>& layers, int64_t cols, int64_t group_size, float* w_mean) {
  if (group_size <= 0 || cols % group_size != 0) {
    return Errorf("AWQ: group size {} does not divide the row of {} columns", group_size, cols);
  }
  std::vector<double> sum(Z(cols), 0.0);
  int64_t total_rows = 0;
  for (const AwqWeight& l : layers) {
    for (int64_t r = 0; r < l.rows; ++r) {
      const float* row = l.w + r * cols;
      for (int64_t g0 = 0; g0 < cols; g0 += group_size) {
        float amax = 0;
        for (int64_t i = 0; i < group_size; ++i) amax = std::max(amax, std::fabs(row[g0 + i]));
        const float den = amax + 1e-6f;
        for (int64_t i = 0; i < group_size; ++i) sum[Z(g0 + i)] += std::fabs(row[g0 + i]) / den;
      }
    }
    total_rows += l.rows;
  }
  if (total_rows == 0) return Errorf("AWQ: no weights to average");
  for (int64_t c = 0; c < cols; ++c) w_mean[c] = static_cast<float>(sum[Z(c)] / static_cast<double>(total_rows));
  return OkStatus();
}

void AwqScales(const float* x_mean, const float* w_mean, int64_t cols, float ratio, bool duo_scaling, float* s) {
  for (int64_t c = 0; c < cols; ++c) {
    const float v = duo_scaling ? std::pow(x_mean[c], ratio) / (std::pow(w_mean[c], 1.0f - ratio) + 1e-4f)
                                : std::pow(x_mean[c], ratio);
    s[c] = std::max(v, 1e-4f);
  }
  float mx = s[0], mn = s[0];
  for (int64_t c = 1; c < cols; ++c) {
    mx = std::max(mx, s[c]);
    mn = std::min(mn, s[c]);
  }
  const float norm = std::sqrt(mx * mn);
  for (int64_t c = 0; c < cols; ++c) {
    s[c] /= norm;
    if (!std::isfinite(s[c])) s[c] = 1.0f;
  }
}

Expected<AwqScaleSearch> AwqSearchScales(const float* x_mean, const float* w_mean, int64_t cols, bool duo_scaling,
                                         FunctionRef<double(const float* scales)> loss, int n_grid) {
  if (cols <= 0 || n_grid <= 0) return Errorf("AWQ scale search needs columns and a grid (got {}, {})", cols, n_grid);
  AwqScaleSearch out;
  std::vector<float> s(Z(cols));
  double best = HUGE_VAL;
  int best_k = -1;
  for (int k = 0; k < n_grid; ++k) {
    const float ratio = static_cast<float>(k) / static_cast<float>(n_grid);
    AwqScales(x_mean, w_mean, cols, ratio, duo_scaling, s.data());
    const double l = loss(s.data());
    out.losses.push_back(l);
    if (l < best) {
      best = l;
      best_k = k;
      out.best_ratio = ratio;
      out.scales = s;
    }
  }
  if (best_k < 0) return Errorf("AWQ scale search: no ratio gave a finite loss (losses are all inf or NaN)");
  return out;
}

Status AwqScaledPseudoQuantize(const float* w, int64_t rows, int64_t cols, const float* s, const LinearQuantSpec& spec,
                               float* out) {
  LOWBIT_RETURN_IF_ERROR(CheckAwqSpec(spec, cols));
  const LinearQuantSpec as = AwqSpec(spec);
  const int64_t group = GroupOf(spec, cols);
  std::vector<float> ws(Z(cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) ws[Z(c)] = w[r * cols + c] * s[c];
    for (int64_t g0 = 0; g0 < cols; g0 += group) PseudoQuantizeGroup(ws.data() + g0, group, as, ws.data() + g0);
    for (int64_t c = 0; c < cols; ++c) out[r * cols + c] = ws[Z(c)] / s[c];
  }
  return OkStatus();
}

Expected<std::vector<float>> AwqSearchClip(const float* w, int64_t rows, int64_t cols, const float* x,
                                           int64_t n_tokens, int64_t ld, const LinearQuantSpec& spec,
                                           const AwqClipOptions& options, ThreadPool* pool) {
  LOWBIT_RETURN_IF_ERROR(CheckAwqSpec(spec, cols));
  if (n_tokens <= 0) return Errorf("AWQ clip search needs calibration tokens (got {})", n_tokens);
  if (options.n_grid <= 0 || !(options.max_shrink > 0 && options.max_shrink < 1) || options.n_sample_tokens <= 0) {
    return Errorf("AWQ clip search needs grid > 0, 0 < max shrink < 1 and sampled tokens > 0");
  }
  const LinearQuantSpec as = AwqSpec(spec);
  const int64_t group = GroupOf(spec, cols), ng = cols / group;
  const int64_t step = std::max<int64_t>(1, n_tokens / options.n_sample_tokens);
  const int64_t nt = (n_tokens + step - 1) / step;
  // xt[g][k][t]: the sampled inputs of group g, transposed (B of the error product).
  std::vector<float> xt(Z(cols * nt));
  linalg::ParallelFor(pool, ng, [&](size_t g0, size_t g1) {
    for (int64_t g = static_cast<int64_t>(g0); g < static_cast<int64_t>(g1); ++g)
      for (int64_t t = 0; t < nt; ++t)
        for (int64_t k = 0; k < group; ++k) xt[Z((g * group + k) * nt + t)] = x[t * step * ld + g * group + k];
  }, 1);
  const int n_shrink = static_cast<int>(options.max_shrink * options.n_grid);
  std::vector<float> max_val(Z(rows * ng));
  constexpr int64_t kTile = 16;
  const LinalgKernels& kern = ActiveLinalgKernels();
  linalg::ParallelFor(pool, (rows + kTile - 1) / kTile, [&](size_t t0, size_t t1) {
    std::vector<float> dq(Z(kTile * group)), e(Z(kTile * nt)), cur(Z(group));
    std::vector<float> org(Z(kTile)), best(Z(kTile));
    std::vector<double> min_err(Z(kTile));
    for (int64_t tile = static_cast<int64_t>(t0); tile < static_cast<int64_t>(t1); ++tile) {
      const int64_t r0 = tile * kTile, m = std::min(kTile, rows - r0);
      for (int64_t g = 0; g < ng; ++g) {
        for (int64_t i = 0; i < m; ++i) {
          const float* wg = w + (r0 + i) * cols + g * group;
          float amax = 0;
          for (int64_t k = 0; k < group; ++k) amax = std::max(amax, std::fabs(wg[k]));
          org[Z(i)] = best[Z(i)] = amax;
          min_err[Z(i)] = 1e9;
        }
        for (int s = 0; s < n_shrink; ++s) {
          const float shrink = static_cast<float>(1.0 - static_cast<double>(s) / options.n_grid);
          for (int64_t i = 0; i < m; ++i) {
            const float* wg = w + (r0 + i) * cols + g * group;
            const float mv = org[Z(i)] * shrink;
            for (int64_t k = 0; k < group; ++k) cur[Z(k)] = std::clamp(wg[k], -mv, mv);
            PseudoQuantizeGroup(cur.data(), group, as, cur.data());
            for (int64_t k = 0; k < group; ++k) dq[Z(i * group + k)] = cur[Z(k)] - wg[k];
          }
          GemmArgs ga;
          ga.m = m;
          ga.n = nt;
          ga.k = group;
          ga.a = dq.data();
          ga.a_rs = group;
          ga.a_ks = 1;
          ga.b = xt.data() + g * group * nt;
          ga.ldb = nt;
          ga.c = e.data();
          ga.ldc = nt;
          kern.gemm(ga, GemmMode::kSet);
          for (int64_t i = 0; i < m; ++i) {
            double sum = 0;
            for (int64_t t = 0; t < nt; ++t) sum += static_cast<double>(e[Z(i * nt + t)]) * e[Z(i * nt + t)];
            const double err = sum / static_cast<double>(nt);
            if (err < min_err[Z(i)]) {
              min_err[Z(i)] = err;
              best[Z(i)] = org[Z(i)] * shrink;
            }
          }
        }
        for (int64_t i = 0; i < m; ++i) max_val[Z((r0 + i) * ng + g)] = best[Z(i)];
      }
    }
  }, 1);
  return max_val;
}

void AwqApplyClip(float* w, int64_t rows, int64_t cols, int64_t group_size, const float* max_val) {
  const int64_t ng = cols / group_size;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const float mv = max_val[r * ng + c / group_size];
      w[r * cols + c] = std::clamp(w[r * cols + c], -mv, mv);
    }
}

}  // namespace lowbit

#include "lowbit/quant/linear_quant.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

#include "lowbit/numeric/half.h"
#include "lowbit/quant/linear_range.h"

namespace lowbit {
namespace {

struct Range {
  float lo, hi;
};

void MinMax(const float* x, int64_t n, float* lo, float* hi) {
  float a = FLT_MAX, b = -FLT_MAX;
  for (int64_t i = 0; i < n; ++i) {
    a = std::min(a, x[i]);
    b = std::max(b, x[i]);
  }
  *lo = n > 0 ? a : 0.0f;
  *hi = n > 0 ? b : 0.0f;
}

// AutoGPTQ's range adjustment: contain 0; sym widens to [-max|x|, max|x|] (only the upper end when no
// value is negative); an all-zero range becomes [-1, 1].
Range GptqRange(float lo, float hi, bool sym) {
  float xmin = std::min(lo, 0.0f), xmax = std::max(hi, 0.0f);
  if (sym) {
    xmax = std::max(std::fabs(xmin), xmax);
    if (xmin < 0) xmin = -xmax;
  }
  if (xmin == 0 && xmax == 0) {
    xmin = -1;
    xmax = 1;
  }
  return {xmin, xmax};
}

// (scale, zero) of an adjusted GPTQ range; `sym_zero` is the fixed zero (maxq + 1) / 2.
GroupParams GptqParams(Range r, const LinearQuantSpec& spec) {
  const float maxq = static_cast<float>(spec.maxq());
  GroupParams p;
  const float scale = (r.hi - r.lo) / maxq;
  p.zero = spec.sym ? (spec.maxq() + 1) / 2 : static_cast<int32_t>(std::nearbyint(-r.lo / scale));
  p.scale = RoundScale(scale, spec.scale_rounding);
  return p;
}

// AutoAWQ's pseudo_quantize_tensor: asym from the plain min/max, sym from max |x|; 1e-5 floors.
GroupParams AwqParams(float lo, float hi, const LinearQuantSpec& spec) {
  GroupParams p;
  if (spec.sym) {
    const float amax = std::max(std::max(std::fabs(lo), std::fabs(hi)), 1e-5f);
    p.scale = RoundScale(amax / static_cast<float>((1 << (spec.bits - 1)) - 1), spec.scale_rounding);
    p.zero = 1 << (spec.bits - 1);
    return p;
  }
  const int maxq = spec.maxq();
  const float scale = std::max(hi - lo, 1e-5f) / static_cast<float>(maxq);
  const float z = -std::nearbyint(lo / scale);
  p.zero = static_cast<int32_t>(std::clamp(z, 0.0f, static_cast<float>(maxq)));
  p.scale = RoundScale(scale, spec.scale_rounding);
  return p;
}

GroupParams ParamsOfRange(float lo, float hi, const LinearQuantSpec& spec) {
  if (spec.grid == QuantGrid::kLog2) {
    float amax = std::max(std::fabs(lo), std::fabs(hi));
    if (amax == 0) amax = 1;
    return {RoundScale(amax, spec.scale_rounding), 0};
  }
  if (spec.convention == QuantConvention::kAwq) return AwqParams(lo, hi, spec);
  return GptqParams(GptqRange(lo, hi, spec.sym), spec);
}

// sum |q(x) - x|^norm for one candidate.
double GroupError(const float* x, int64_t n, GroupParams p, const LinearQuantSpec& spec) {
  double err = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double e = std::fabs(static_cast<double>(GroupValue(GroupCode(x[i], p, spec), p, spec)) - x[i]);
    err += spec.mse_norm == 2.0 ? e * e : std::pow(e, spec.mse_norm);
  }
  return err;
}

// AutoGPTQ's find_params(mse=True): shrink the adjusted range by p = 1 - k / grid; asym recomputes
// the zero for each candidate, sym keeps (maxq + 1) / 2. The first (least shrunk) of equal errors wins.
GroupParams MseParams(const float* x, int64_t n, float lo, float hi, const LinearQuantSpec& spec) {
  Range base{lo, hi};
  if (spec.grid == QuantGrid::kUniform && spec.convention == QuantConvention::kGptq) base = GptqRange(lo, hi, spec.sym);
  GroupParams best = ParamsOfRange(base.lo, base.hi, spec);
  double best_err = HUGE_VAL;
  const int steps = static_cast<int>(spec.mse_max_shrink * spec.mse_grid);
  for (int k = 0; k < steps; ++k) {
    const float p = static_cast<float>(1.0 - static_cast<double>(k) / spec.mse_grid);
    const float lo1 = p * base.lo, hi1 = p * base.hi;
    GroupParams cand;
    if (spec.grid == QuantGrid::kUniform && spec.convention == QuantConvention::kGptq) {
      const float scale = (hi1 - lo1) / static_cast<float>(spec.maxq());
      cand.zero = spec.sym ? (spec.maxq() + 1) / 2 : static_cast<int32_t>(std::nearbyint(-lo1 / scale));
      cand.scale = RoundScale(scale, spec.scale_rounding);
    } else {
      cand = ParamsOfRange(lo1, hi1, spec);
    }
    const double err = GroupError(x, n, cand, spec);
    if (err < best_err) {
      best_err = err;
      best = cand;
    }
  }
  return best;
}

}  // namespace

float RoundScale(float s, ScaleRounding rounding) {
  if (rounding == ScaleRounding::kNone || !std::isfinite(s)) return s;
  float r;
  if (rounding == ScaleRounding::kF16) {
    r = Fp16ToFp32(Fp32ToFp16(s));
    if (std::isinf(r)) r = std::copysign(65504.0f, s);
    if (r == 0 && s != 0) r = std::copysign(Fp16ToFp32(1), s);  // smallest fp16 subnormal, 2^-24
  } else {
    r = Bf16ToFp32(Fp32ToBf16(s));
    if (std::isinf(r)) r = std::copysign(FLT_MAX, s);
    if (r == 0 && s != 0) r = std::copysign(BitsFloat(1u << 16), s);  // smallest bf16 subnormal
  }
  return r;
}

Status ValidateSpec(const LinearQuantSpec& spec, int64_t cols) {
  if (spec.bits < 2 || spec.bits > 8) return Errorf("bits must be 2..8 (got {})", spec.bits);
  if (cols <= 0) return Errorf("a row must have at least one column (got {})", cols);
  if (spec.granularity == QuantGranularity::kPerGroup) {
    if (spec.group_size <= 0) {
      return Errorf("group size must be positive (got {}); use per-channel for group size -1", spec.group_size);
    }
    if (spec.convention == QuantConvention::kAwq && cols % spec.group_size != 0) {
      return Errorf("group size {} does not divide the row of {} columns (AWQ needs whole groups)", spec.group_size,
                    cols);
    }
  }
  if (spec.range == QuantRange::kPercentile && !(spec.percentile > 50 && spec.percentile <= 100)) {
    return Errorf("percentile must be in (50, 100] (got {})", spec.percentile);
  }
  if (spec.range == QuantRange::kMse &&
      (spec.mse_grid <= 0 || !(spec.mse_max_shrink > 0 && spec.mse_max_shrink < 1) || !(spec.mse_norm > 0))) {
    return Errorf("MSE search needs grid > 0, 0 < max shrink < 1 and norm > 0 (got {}, {}, {})", spec.mse_grid,
                  spec.mse_max_shrink, spec.mse_norm);
  }
  if (spec.range == QuantRange::kKl && (spec.kl_bins < kKlStartBin || spec.kl_bins > (1 << 20))) {
    return Errorf("KL calibration needs {}..{} histogram bins (got {})", kKlStartBin, 1 << 20, spec.kl_bins);
  }
  return OkStatus();
}

GroupParams FindGroupParams(const float* x, int64_t n, const LinearQuantSpec& spec) {
  float lo, hi;
  MinMax(x, n, &lo, &hi);
  switch (spec.range) {
    case QuantRange::kMinMax:
      break;
    case QuantRange::kMse:
      return MseParams(x, n, lo, hi, spec);
    case QuantRange::kPercentile:
      if (spec.sym || spec.grid == QuantGrid::kLog2) {
        const float t = AbsPercentile(x, n, spec.percentile);
        lo = std::max(lo, -t);
        hi = std::min(hi, t);
      } else {
        PercentileRange(x, n, spec.percentile, &lo, &hi);
      }
      break;
    case QuantRange::kKl: {
      const float t = KlThreshold(x, n, spec.bits, spec.kl_bins);
      lo = std::max(lo, -t);
      hi = std::min(hi, t);
      break;
    }
  }
  return ParamsOfRange(lo, hi, spec);
}

int Log2Code(float x, float scale, int bits) {
  const int mmax = (1 << (bits - 1)) - 1;
  const int sign = std::signbit(x) ? 1 << (bits - 1) : 0;
  const float t = std::fabs(x) / std::fabs(scale);
  if (!(t > 0)) return 0;
  int m;
  if (t >= 1) {
    m = mmax;
  } else {
    // Candidates 2^e and 2^(e+1) around t; the nearer one in value (ties to the larger magnitude).
    const int e = std::ilogb(t);                 // 2^e <= t < 2^(e+1)
    const int m_lo = e + mmax, m_hi = m_lo + 1;  // m = e + mmax gives 2^e
    const float v_lo = std::ldexp(1.0f, e), v_hi = std::ldexp(1.0f, e + 1);
    m = (t - v_lo < v_hi - t) ? m_lo : m_hi;
    if (m > mmax) m = mmax;
    if (m < 1) {
      // Below the smallest level: 0 or the smallest level, whichever is nearer.
      m = t >= 0.5f * std::ldexp(1.0f, 1 - mmax) ? 1 : 0;
    }
  }
  return m == 0 ? 0 : (sign | m);
}

float Log2Value(int q, float scale, int bits) {
  const int mmax = (1 << (bits - 1)) - 1;
  const int m = q & mmax;
  if (m == 0) return 0.0f;
  const float v = std::fabs(scale) * std::ldexp(1.0f, m - mmax);
  return (q >> (bits - 1)) & 1 ? -v : v;
}

float LinearQuantized::Value(int64_t r, int64_t c) const {
  const int64_t g = g_idx[static_cast<size_t>(c)];
  const size_t gi = static_cast<size_t>(g * rows + r);
  const int q = codes[static_cast<size_t>(r * cols + c)];
  if (grid == QuantGrid::kLog2) return Log2Value(q, scales[gi], bits);
  return CodeValue(q, {scales[gi], zeros[gi]});
}

std::vector<float> LinearQuantized::Dequantize() const {
  std::vector<float> out(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) out[static_cast<size_t>(r * cols + c)] = Value(r, c);
  }
  return out;
}

Expected<LinearQuantized> QuantizeLinear(const float* w, int64_t rows, int64_t cols, const LinearQuantSpec& spec) {
  LOWBIT_RETURN_IF_ERROR(ValidateSpec(spec, cols));
  if (rows <= 0) return Errorf("a weight needs at least one row (got {})", rows);
  for (int64_t i = 0; i < rows * cols; ++i) {
    if (!std::isfinite(w[i])) return Errorf("weight [{}, {}] is not finite ({})", i / cols, i % cols, w[i]);
  }
  LinearQuantized q;
  q.bits = spec.bits;
  q.grid = spec.grid;
  q.rows = rows;
  q.cols = cols;
  q.group_size = spec.granularity == QuantGranularity::kPerGroup ? std::min(spec.group_size, cols) : cols;
  const int64_t ng = q.n_groups();
  q.codes.resize(static_cast<size_t>(rows * cols));
  q.scales.resize(static_cast<size_t>(ng * rows));
  q.zeros.resize(static_cast<size_t>(ng * rows));
  q.g_idx.resize(static_cast<size_t>(cols));
  for (int64_t c = 0; c < cols; ++c) q.g_idx[static_cast<size_t>(c)] = static_cast<int32_t>(c / q.group_size);
  GroupParams tensor_params;
  if (spec.granularity == QuantGranularity::kPerTensor) tensor_params = FindGroupParams(w, rows * cols, spec);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < ng; ++g) {
      const int64_t c0 = g * q.group_size, n = std::min(q.group_size, cols - c0);
      const float* x = w + r * cols + c0;
      const GroupParams p = spec.granularity == QuantGranularity::kPerTensor ? tensor_params : FindGroupParams(x, n, spec);
      q.scales[static_cast<size_t>(g * rows + r)] = p.scale;
      q.zeros[static_cast<size_t>(g * rows + r)] = p.zero;
      for (int64_t i = 0; i < n; ++i) q.codes[static_cast<size_t>(r * cols + c0 + i)] = static_cast<uint8_t>(GroupCode(x[i], p, spec));
    }
  }
  return q;
}

}  // namespace lowbit

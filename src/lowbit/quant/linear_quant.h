// The linear (integer-grid) weight quantizer family that RTN, GPTQ and AWQ share.
//
// A group of values x is stored as codes q in [0, 2^bits) with one scale s and one integer zero z:
// x ~= s * (q - z). Choices, all independent:
//   bits 2..8; symmetric (z fixed at 2^(bits-1)) or asymmetric (z per group);
//   granularity: per tensor, per output channel (row), or per group of `group_size` columns (the last
//     group of a row may be shorter: GPTQ's group 128 on a 288-wide row gives 128, 128, 32);
//   range: min/max (never saturates), percentile, an MSE search over shrink factors (GPTQ's `mse`
//     grid), or the KL divergence of the histogram (TensorRT's entropy calibration);
//   grid: uniform codes, or log2 codes (sign + power-of-two magnitude, see Log2Value).
// How a range becomes (s, z) follows one of two reference tools exactly (`Convention`):
//   kGptq (AutoGPTQ quantizer.py, also GPTQModel): the range always contains 0; sym widens it to
//     [-max|x|, max|x|] (when any value is negative); an all-zero range becomes [-1, 1];
//     s = (xmax - xmin) / maxq, z = round(-xmin / s) (asym) or (maxq + 1) / 2 (sym).
//   kAwq (AutoAWQ pseudo_quantize_tensor): asym s = max(xmax - xmin, 1e-5) / maxq,
//     z = clamp(-round(xmin / s), 0, maxq); sym s = max(max|x|, 1e-5) / (2^(bits-1) - 1), z = 2^(bits-1).
// Codes are q = clamp(round(x / s) + z, 0, maxq) with round-half-to-even (torch.round), x / s a true
// division, as both tools compute. The stored scale is rounded to fp16 (or bf16) before any code is
// chosen when `scale_rounding` says so, so the codes are optimal for the scale that is stored; z is
// computed from the unrounded scale, as the tools compute it before they store the fp16 scale.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "lowbit/base/status.h"

namespace lowbit {

enum class QuantGranularity { kPerTensor, kPerChannel, kPerGroup };
enum class QuantRange { kMinMax, kPercentile, kMse, kKl };
enum class QuantConvention { kGptq, kAwq };
enum class QuantGrid { kUniform, kLog2 };
enum class ScaleRounding { kNone, kF16, kBF16 };

struct LinearQuantSpec {
  int bits = 4;                      // 2..8
  bool sym = false;
  QuantGranularity granularity = QuantGranularity::kPerGroup;
  int64_t group_size = 128;          // columns per group (kPerGroup only)
  QuantRange range = QuantRange::kMinMax;
  QuantConvention convention = QuantConvention::kGptq;
  QuantGrid grid = QuantGrid::kUniform;
  ScaleRounding scale_rounding = ScaleRounding::kF16;
  double percentile = 99.99;         // kPercentile: keep this share (%) of the values inside the range
  // kMse (AutoGPTQ Quantizer.configure defaults): shrink factors p = 1 - k / grid for
  // k < int(max_shrink * grid); keeps the p minimizing sum |q(x) - x|^norm.
  double mse_max_shrink = 0.8;
  int mse_grid = 100;
  double mse_norm = 2.4;
  int kl_bins = 2048;                // kKl: histogram bins of |x|

  int maxq() const { return (1 << bits) - 1; }
};

// Checks the spec's numbers (bits, group size, percentile, grid sizes) for a row of `cols` columns.
Status ValidateSpec(const LinearQuantSpec& spec, int64_t cols);

// Scale and zero of one group.
struct GroupParams {
  float scale = 1.0f;
  int32_t zero = 0;
};

// Scale and zero for the `n` values x[0..n) (the group's range per spec.range). For the log2 grid the
// scale is the magnitude of the largest code and zero is unused (0).
GroupParams FindGroupParams(const float* x, int64_t n, const LinearQuantSpec& spec);

// The code of x and the value it stands for (uniform grid).
inline int QuantizeCode(float x, GroupParams p, int maxq);
// Either grid (defined below).
inline int GroupCode(float x, GroupParams p, const LinearQuantSpec& spec);
inline float GroupValue(int q, GroupParams p, const LinearQuantSpec& spec);
inline float CodeValue(int q, GroupParams p) { return p.scale * static_cast<float>(q - p.zero); }

// Log2 grid: bit (bits-1) of the code is the sign, the rest m in [0, 2^(bits-1)); m = 0 is 0, else
// the magnitude is scale * 2^(m - (2^(bits-1) - 1)): the largest code is +-scale, each lower one half
// of the one above. The scale is the group's max |x| (or the saturating range's bound).
int Log2Code(float x, float scale, int bits);
float Log2Value(int q, float scale, int bits);

// One quantized linear layer, unpacked (the content of formats' IntQuantLinear; the pipeline
// converts): row = output channel, column = input channel.
struct LinearQuantized {
  int bits = 4;
  QuantGrid grid = QuantGrid::kUniform;
  int64_t rows = 0, cols = 0;
  int64_t group_size = 128;    // columns per group; == cols for per channel and per tensor
  std::vector<uint8_t> codes;  // [rows][cols], each < 2^bits
  std::vector<float> scales;   // [n_groups][rows], exactly the stored (rounded) values
  std::vector<int32_t> zeros;  // [n_groups][rows], the effective zero point
  std::vector<int32_t> g_idx;  // [cols], group of each column (i / group_size unless act-order)

  int64_t n_groups() const { return (cols + group_size - 1) / group_size; }
  float Value(int64_t r, int64_t c) const;
  // All values, [rows][cols].
  std::vector<float> Dequantize() const;
};

// Round to nearest on the spec's grid (RTN): w is [rows][cols].
Expected<LinearQuantized> QuantizeLinear(const float* w, int64_t rows, int64_t cols, const LinearQuantSpec& spec);

// Rounds a scale as the checkpoint stores it (keeping it finite and nonzero).
float RoundScale(float s, ScaleRounding rounding);

// Round half to even (torch.round) without a libm call: exact in the default rounding mode, by the
// 1.5 * 2^23 trick below 2^22 (larger floats are integers or, up to 2^23, take nearbyint). IEEE
// arithmetic: the compiler may not fold (v + m) - m (no -ffast-math anywhere in lowbit).
inline float RoundHalfEven(float v) {
  constexpr float m = 12582912.0f;
  return std::fabs(v) < 4194304.0f ? (v + m) - m : std::nearbyint(v);
}

inline int QuantizeCode(float x, GroupParams p, int maxq) {
  const float q = RoundHalfEven(x / p.scale) + static_cast<float>(p.zero);
  return !(q >= 0.0f) ? 0 : (q > static_cast<float>(maxq) ? maxq : static_cast<int>(q));
}

inline int GroupCode(float x, GroupParams p, const LinearQuantSpec& spec) {
  return spec.grid == QuantGrid::kLog2 ? Log2Code(x, p.scale, spec.bits) : QuantizeCode(x, p, spec.maxq());
}

inline float GroupValue(int q, GroupParams p, const LinearQuantSpec& spec) {
  return spec.grid == QuantGrid::kLog2 ? Log2Value(q, p.scale, spec.bits) : CodeValue(q, p);
}

}  // namespace lowbit

// Saturating ranges for the linear quantizer (linear_quant.h): percentiles and TensorRT's entropy
// (KL-divergence) calibration, on plain arrays.
#pragma once

#include <cstdint>

namespace lowbit {

// numpy's default (linear) percentile of |x| and of x: the value at rank p/100 * (n - 1) of the sorted
// values, interpolated between neighbours.
float AbsPercentile(const float* x, int64_t n, double p);
// lo = percentile(x, 100 - p), hi = percentile(x, p).
void PercentileRange(const float* x, int64_t n, double p, float* lo, float* hi);

// TensorRT's entropy calibration (pytorch-quantization calib/histogram.py _compute_amax_entropy):
// a histogram of |x| in `bins` bins over [0, max|x|] (bin 0 takes bin 1's count); for every candidate
// i >= kKlStartBin the reference P is bins [0, i) with the outliers added to bin i - 1, Q spreads
// bins [0, i) over 2^(bits-1) levels (each level's count evenly over its nonzero bins); the threshold
// is the right edge of bin i for the last i that minimizes KL(P || Q). All-zero input gives 0.
inline constexpr int kKlStartBin = 128;
float KlThreshold(const float* x, int64_t n, int bits, int bins);

}  // namespace lowbit

#include "lowbit/quant/linear_range.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace lowbit {
namespace {

// numpy.percentile(v, p) with linear interpolation; v is reordered.
float PercentileOf(std::vector<float>& v, double p) {
  const double pos = p / 100.0 * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const double frac = pos - static_cast<double>(lo);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(lo), v.end());
  const float a = v[lo];
  if (frac == 0 || lo + 1 >= v.size()) return a;
  const float b = *std::min_element(v.begin() + static_cast<std::ptrdiff_t>(lo) + 1, v.end());
  return static_cast<float>(a + (static_cast<double>(b) - a) * frac);
}

}  // namespace

float AbsPercentile(const float* x, int64_t n, double p) {
  if (n <= 0) return 0.0f;
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = std::fabs(x[i]);
  return PercentileOf(v, p);
}

void PercentileRange(const float* x, int64_t n, double p, float* lo, float* hi) {
  if (n <= 0) {
    *lo = *hi = 0.0f;
    return;
  }
  std::vector<float> v(x, x + n);
  *hi = PercentileOf(v, p);
  *lo = PercentileOf(v, 100.0 - p);
}

float KlThreshold(const float* x, int64_t n, int bits, int bins) {
  float amax = 0;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  if (!(amax > 0)) return 0.0f;
  // torch.histc(|x|, bins, 0, amax): bin floor(v * bins / amax), the maximum in the last bin.
  std::vector<double> hist(static_cast<size_t>(bins), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const double v = std::fabs(x[i]);
    const int b = std::min(bins - 1, static_cast<int>(v * bins / amax));
    hist[static_cast<size_t>(b)] += 1;
  }
  hist[0] = hist[1];  // as pytorch-quantization: the spike of exact zeros would dominate
  const int levels = 1 << (bits - 1);
  std::vector<double> suffix(static_cast<size_t>(bins) + 1, 0.0);  // suffix[i] = sum hist[i:]
  for (int i = bins - 1; i >= 0; --i) suffix[static_cast<size_t>(i)] = suffix[static_cast<size_t>(i) + 1] + hist[static_cast<size_t>(i)];
  std::vector<double> level_sum(static_cast<size_t>(levels)), level_count(static_cast<size_t>(levels));
  double best = HUGE_VAL;
  int best_i = bins;
  for (int i = kKlStartBin; i <= bins; ++i) {
    std::fill(level_sum.begin(), level_sum.end(), 0.0);
    std::fill(level_count.begin(), level_count.end(), 0.0);
    for (int j = 0; j < i; ++j) {
      const double h = hist[static_cast<size_t>(j)];
      if (h == 0) continue;
      const size_t k = static_cast<size_t>(static_cast<int64_t>(j) * levels / i);  // np.digitize on linspace(0, i, levels + 1)
      level_sum[k] += h;
      level_count[k] += 1;
    }
    const double outliers = suffix[static_cast<size_t>(i)];
    const double sum_p = suffix[0] - suffix[static_cast<size_t>(i)] + outliers, sum_q = suffix[0] - outliers;
    double kl = 0;
    for (int j = 0; j < i && kl != HUGE_VAL; ++j) {
      const double h = hist[static_cast<size_t>(j)];
      const double p = (h + (j == i - 1 ? outliers : 0.0)) / sum_p;
      if (p == 0) continue;
      const size_t k = static_cast<size_t>(static_cast<int64_t>(j) * levels / i);
      const double q = h == 0 ? 0.0 : level_sum[k] / level_count[k] / sum_q;
      kl = q > 0 ? kl + p * std::log(p / q) : HUGE_VAL;
    }
    if (kl <= best) {  // the last minimum, as pytorch-quantization
      best = kl;
      best_i = i;
    }
  }
  return static_cast<float>(static_cast<double>(amax) * best_i / bins);
}

}  // namespace lowbit

#include "lowbit/quant/error_stats.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace lowbit {

void ErrorStats::Add(const float* x, const float* y, int64_t n, const float* w) {
  for (int64_t i = 0; i < n; ++i) {
    const double e = static_cast<double>(x[i]) - y[i];
    const double wi = w ? w[i] : 1.0;
    sum_sq_err += wi * e * e;
    sum_sq_x += wi * static_cast<double>(x[i]) * x[i];
    sum_w += wi;
    max_abs_err = std::max(max_abs_err, std::fabs(e));
  }
}

void ErrorStats::Merge(const ErrorStats& o) {
  sum_sq_err += o.sum_sq_err;
  sum_sq_x += o.sum_sq_x;
  sum_w += o.sum_w;
  max_abs_err = std::max(max_abs_err, o.max_abs_err);
}

double ErrorStats::rmse() const { return sum_w > 0 ? std::sqrt(sum_sq_err / sum_w) : 0.0; }

double ErrorStats::sqnr_db() const {
  if (sum_sq_err == 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(sum_sq_x / sum_sq_err);
}

}  // namespace lowbit

// Quantization error statistics of a reconstruction y of x: RMSE (optionally weighted per column
// by an importance vector), max abs error, and SQNR in dB.
#pragma once

#include <cstdint>

namespace lowbit {

struct ErrorStats {
  double sum_sq_err = 0;    // sum (x - y)^2, weighted when weights are given
  double sum_sq_x = 0;      // sum x^2, weighted likewise
  double sum_w = 0;         // number of elements, or sum of weights
  double max_abs_err = 0;

  void Add(const float* x, const float* y, int64_t n, const float* col_weights = nullptr);
  void Merge(const ErrorStats& o);
  double rmse() const;
  double sqnr_db() const;  // 10 log10(sum x^2 / sum err^2)
};

}  // namespace lowbit

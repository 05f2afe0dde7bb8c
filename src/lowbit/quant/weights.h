// Per-element weights of one block for the quantizer searches: the importance matrix slice, or ones.
// A sub-block whose importances are all zero (columns never activated) gets ones, so its fit stays
// defined.
#pragma once

#include <algorithm>

namespace lowbit {

inline void BlockWeights(const float* imatrix, int n, int sub, float* w) {
  if (imatrix == nullptr) {
    std::fill(w, w + n, 1.0f);
    return;
  }
  for (int j = 0; j < n; j += sub) {
    float sum = 0;
    for (int i = 0; i < sub; ++i) sum += std::max(0.0f, imatrix[j + i]);
    for (int i = 0; i < sub; ++i) w[j + i] = sum > 0 ? std::max(0.0f, imatrix[j + i]) : 1.0f;
  }
}

}  // namespace lowbit

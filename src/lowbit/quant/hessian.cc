#include "lowbit/quant/hessian.h"

#include <algorithm>
#include <cmath>

#include "lowbit/base/check.h"
#include "lowbit/quant/linalg.h"

namespace lowbit {

HessianAccumulator::HessianAccumulator(int64_t cols) : cols_(cols) {
  LOWBIT_CHECK(cols > 0);
  h_.assign(static_cast<size_t>(cols * cols), 0.0f);
}

void HessianAccumulator::AddBatch(const float* x, int64_t n, int64_t ld, ThreadPool* pool) {
  if (n <= 0) return;
  const int64_t total = nsamples_ + n;
  if (nsamples_ > 0) {
    const float beta = static_cast<float>(static_cast<double>(nsamples_) / static_cast<double>(total));
    linalg::ParallelFor(pool, cols_, [&](size_t r0, size_t r1) {
      for (size_t r = r0; r < r1; ++r) {
        float* row = h_.data() + r * static_cast<size_t>(cols_);
        for (int64_t j = static_cast<int64_t>(r); j < cols_; ++j) row[j] *= beta;
      }
    });
  }
  nsamples_ = total;
  const float scale = static_cast<float>(std::sqrt(2.0 / static_cast<double>(total)));
  panels_.resize(static_cast<size_t>(linalg::PanelFloats(cols_, kChunk)));
  for (int64_t r0 = 0; r0 < n; r0 += kChunk) {
    const int64_t k = std::min(kChunk, n - r0);
    linalg::PackColumnPanels(x + r0 * ld, k, cols_, ld, scale, panels_.data(), pool);
    linalg::SyrkPanels(panels_.data(), cols_, k, h_.data(), cols_, GemmMode::kAdd, linalg::Triangle::kUpper,
                       false, pool);
  }
  const int64_t np = (cols_ + linalg::kPanel - 1) / linalg::kPanel;
  flops_ += 2.0 * static_cast<double>(n) * (np * (np + 1) / 2) * linalg::kPanel * linalg::kPanel;
}

std::vector<float> HessianAccumulator::Finish(ThreadPool* pool) {
  linalg::MirrorUpperToLower(h_.data(), cols_, pool);
  std::vector<float> out = std::move(h_);
  h_.clear();
  nsamples_ = 0;
  return out;
}

}  // namespace lowbit

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
  // H *= n_old / n_new, done by the first pass's tiles.
  float beta = static_cast<float>(static_cast<double>(nsamples_) / static_cast<double>(total));
  nsamples_ = total;
  const float scale = static_cast<float>(std::sqrt(2.0 / static_cast<double>(total)));
  const int64_t stride = linalg::PanelFloats(cols_, kChunk);
  const int64_t max_chunks = std::max<int64_t>(1, kPassBytes / (stride * static_cast<int64_t>(sizeof(float))));
  for (int64_t r0 = 0; r0 < n; r0 += max_chunks * kChunk) {
    const int64_t rows = std::min(n - r0, max_chunks * kChunk);
    const int64_t chunks = (rows + kChunk - 1) / kChunk, k_last = rows - (chunks - 1) * kChunk;
    panels_.resize(static_cast<size_t>(chunks * stride));
    linalg::ParallelFor(pool, chunks, [&](size_t c0, size_t c1) {
      for (size_t c = c0; c < c1; ++c) {
        const int64_t ci = static_cast<int64_t>(c), k = ci == chunks - 1 ? k_last : kChunk;
        linalg::PackColumnPanels(x + (r0 + ci * kChunk) * ld, k, cols_, ld, scale, panels_.data() + ci * stride, nullptr);
      }
    }, 1);
    linalg::SyrkPanelsChunks(panels_.data(), stride, chunks, cols_, kChunk, k_last, beta, h_.data(), cols_,
                             GemmMode::kAdd, linalg::Triangle::kUpper, pool);
    beta = 1.0f;
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

// The parts of GPTQ that the integer-grid and the ggml-grid rounding steps share (gptq.h): the
// weights in the loop's column order, and the column loop.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/base/thread_pool.h"
#include "lowbit/quant/gptq.h"
#include "lowbit/quant/linalg.h"

namespace lowbit::gptq_internal {

// Wall and process CPU time of a phase.
struct PhaseTimer {
  PhaseTimer();
  void AddTo(double* wall, double* cpu) const;
  double wall0, cpu0;
};

// W [rows][cols] checked (finite), dead columns zeroed and permuted to the factor's loop order.
Expected<std::vector<float>> PrepareWeights(const float* w, int64_t rows, int64_t cols, const GptqHessianFactor& f,
                                            const char* name);

// Copies the factor's fields into stats.
void FactorStats(const GptqHessianFactor& f, GptqStats* stats);

// The column loop over w [rows][cols] (loop order) with U. R::Quantize(r, i, row) returns the value
// that column i of row r is rounded to (row = W[r], updated so far; it may read the row's later
// columns to fit a group). Returns the loss (sum (w - q)^2 / U_ii^2 / 2); w ends holding Q.
template <class R>
double RunColumns(float* w, int64_t rows, int64_t cols, const float* u, int64_t block, R& rounder, ThreadPool* pool,
                  GptqStats* stats) {
  const LinalgKernels& kern = ActiveLinalgKernels();
  std::vector<float> err(static_cast<size_t>(rows * block));
  std::vector<double> row_loss(static_cast<size_t>(rows), 0.0);
  constexpr int64_t kRowTile = 64, kColChunk = 256;
  for (int64_t i1 = 0; i1 < cols; i1 += block) {
    const int64_t i2 = std::min(i1 + block, cols), nb = i2 - i1;
    linalg::ParallelFor(pool, rows, [&](size_t r0, size_t r1) {
      for (int64_t r = static_cast<int64_t>(r0); r < static_cast<int64_t>(r1); ++r) {
        float* wr = w + r * cols;
        float* er = err.data() + r * nb;
        double loss = 0;
        for (int64_t i = i1; i < i2; ++i) {
          const float x = wr[i];
          const float q = rounder.Quantize(r, i, wr);
          const float d = u[i * cols + i];
          const float e = (x - q) / d;
          loss += static_cast<double>(x - q) * (x - q) / (static_cast<double>(d) * d) / 2;
          er[i - i1] = e;
          wr[i] = q;
          kern.axpy(i2 - i - 1, -e, u + i * cols + i + 1, wr + i + 1);
        }
        row_loss[static_cast<size_t>(r)] += loss;
      }
    });
    const int64_t rest = cols - i2;
    stats->flops_update += static_cast<double>(rows) * nb * (nb - 1) + 2.0 * rows * nb * rest;
    if (rest == 0) continue;
    // W[:, i2:] -= Err @ U[i1:i2, i2:], column chunk by column chunk (U's chunk stays in cache).
    const int64_t n_tiles = (rows + kRowTile - 1) / kRowTile, n_chunks = (rest + kColChunk - 1) / kColChunk;
    linalg::ParallelFor(pool, n_tiles * n_chunks, [&](size_t t0, size_t t1) {
      for (size_t t = t0; t < t1; ++t) {
        const int64_t chunk = static_cast<int64_t>(t) / n_tiles, tile = static_cast<int64_t>(t) % n_tiles;
        const int64_t r0 = tile * kRowTile, c0 = i2 + chunk * kColChunk;
        GemmArgs g;
        g.m = std::min(kRowTile, rows - r0);
        g.n = std::min(kColChunk, cols - c0);
        g.k = nb;
        g.a = err.data() + r0 * nb;
        g.a_rs = nb;
        g.a_ks = 1;
        g.b = u + i1 * cols + c0;
        g.ldb = cols;
        g.c = w + r0 * cols + c0;
        g.ldc = cols;
        kern.gemm(g, GemmMode::kSub);
      }
    }, 1);
  }
  double loss = 0;
  for (double l : row_loss) loss += l;
  return loss;
}

}  // namespace lowbit::gptq_internal

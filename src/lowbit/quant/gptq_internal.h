// The parts of GPTQ that the integer-grid and the ggml-grid rounding steps share (gptq.h): the
// weights in the loop's column order, and the column loop.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/base/thread_pool.h"
#include "lowbit/quant/gptq.h"
#include "lowbit/quant/linalg.h"

namespace lowbit::gptq_internal {

inline size_t Z(int64_t v) { return static_cast<size_t>(v); }

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

// The column loop over w [rows][cols] (loop order) with U. R::At(i) returns what column i needs for
// every row (computed once per column); R::Quantize(column, r, row) returns the value that column i
// of row r is rounded to (row = W[r], updated so far; it may read the row's later columns to fit a
// group). Returns the loss (sum (w - q)^2 / U_ii^2 / 2); w ends holding Q.
template <class R>
double RunColumns(float* w, int64_t rows, int64_t cols, const float* u, int64_t block, R& rounder, ThreadPool* pool,
                  GptqStats* stats) {
  const LinalgKernels& kern = ActiveLinalgKernels();
  constexpr int64_t kRowTile = 64, kColChunk = 256;
  const int64_t n_tiles = (rows + kRowTile - 1) / kRowTile;
  // The block's errors k-major per tile of rows, err[(tile * block + k) * kRowTile + r % kRowTile]
  // (the product broadcasts adjacent values); U's block rows packed chunk by chunk,
  // ublk[(chunk * block + k) * kColChunk + j] (contiguous rows of B instead of rows `cols` apart).
  std::unique_ptr<float[]> err(new float[static_cast<size_t>(n_tiles * block * kRowTile)]);
  std::unique_ptr<float[]> ublk(new float[static_cast<size_t>(block * ((cols + kColChunk - 1) / kColChunk) * kColChunk)]);
  std::vector<double> row_loss(static_cast<size_t>(rows), 0.0);
  for (int64_t i1 = 0; i1 < cols; i1 += block) {
    const int64_t i2 = std::min(i1 + block, cols), nb = i2 - i1;
    // Rows in groups of 8 interleaved column by column: each row's column step is a dependent chain
    // (round, error, axpy into the next column); independent chains keep the core busy (1, 4, 8 rows:
    // 46, 50, 52 GFLOP per CPU-second on a 2048 x 2048 layer, shared machine).
    constexpr int64_t kInterleave = 8;
    linalg::ParallelFor(pool, (rows + kInterleave - 1) / kInterleave, [&](size_t g0, size_t g1) {
      for (int64_t r0 = static_cast<int64_t>(g0) * kInterleave; r0 < std::min<int64_t>(rows, static_cast<int64_t>(g1) * kInterleave);
           r0 += kInterleave) {
        const int64_t r1 = std::min(rows, r0 + kInterleave);
        double loss[kInterleave] = {};
        for (int64_t i = i1; i < i2; ++i) {
          const float d = u[i * cols + i];
          const auto col = rounder.At(i);
          for (int64_t r = r0; r < r1; ++r) {
            float* wr = w + r * cols;
            const float x = wr[i];
            const float q = rounder.Quantize(col, r, wr);
            const float e = (x - q) / d;
            loss[r - r0] += 0.5 * static_cast<double>(e) * e;
            err[Z((r / kRowTile) * block * kRowTile + (i - i1) * kRowTile + r % kRowTile)] = e;
            wr[i] = q;
            kern.axpy(i2 - i - 1, -e, u + i * cols + i + 1, wr + i + 1);
          }
        }
        for (int64_t r = r0; r < r1; ++r) row_loss[Z(r)] += loss[r - r0];
      }
    });
    const int64_t rest = cols - i2;
    stats->flops_update += static_cast<double>(rows) * nb * (nb - 1) + 2.0 * rows * nb * rest;
    if (rest == 0) continue;
    // W[:, i2:] -= Err @ U[i1:i2, i2:], column chunk by column chunk (U's chunk stays in cache).
    const int64_t n_chunks = (rest + kColChunk - 1) / kColChunk;
    linalg::ParallelFor(pool, n_chunks, [&](size_t c0b, size_t c1b) {
      for (size_t cb = c0b; cb < c1b; ++cb) {
        const int64_t c0 = i2 + static_cast<int64_t>(cb) * kColChunk, w_n = std::min(kColChunk, cols - c0);
        float* dst = ublk.get() + static_cast<int64_t>(cb) * block * kColChunk;
        for (int64_t k = 0; k < nb; ++k) std::copy(u + (i1 + k) * cols + c0, u + (i1 + k) * cols + c0 + w_n, dst + k * kColChunk);
      }
    }, 1);
    linalg::ParallelFor(pool, n_tiles * n_chunks, [&](size_t t0, size_t t1) {
      for (size_t t = t0; t < t1; ++t) {
        const int64_t chunk = static_cast<int64_t>(t) / n_tiles, tile = static_cast<int64_t>(t) % n_tiles;
        const int64_t r0 = tile * kRowTile, c0 = i2 + chunk * kColChunk;
        GemmArgs g;
        g.m = std::min(kRowTile, rows - r0);
        g.n = std::min(kColChunk, cols - c0);
        g.k = nb;
        g.a = err.get() + tile * block * kRowTile;
        g.a_rs = 1;
        g.a_ks = kRowTile;
        g.b = ublk.get() + chunk * block * kColChunk;
        g.ldb = kColChunk;
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

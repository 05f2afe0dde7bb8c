#include "lowbit/quant/linalg.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "lowbit/base/check.h"

namespace lowbit::linalg {
namespace {

inline size_t Z(int64_t v) { return static_cast<size_t>(v); }

const LinalgKernels& K() { return ActiveLinalgKernels(); }

// Unblocked right-looking Cholesky of the kb x kb diagonal block (lower triangle only).
bool FactorDiagonal(float* d, int64_t kb, int64_t lda, float* col, int64_t* bad) {
  for (int64_t j = 0; j < kb; ++j) {
    float piv = d[j * lda + j];
    if (!(piv > 0) || !std::isfinite(piv)) {
      *bad = j;
      return false;
    }
    piv = std::sqrt(piv);
    d[j * lda + j] = piv;
    for (int64_t i = j + 1; i < kb; ++i) col[i] = d[i * lda + j] /= piv;
    for (int64_t i = j + 1; i < kb; ++i) K().axpy(i - j, -col[i], col + j + 1, d + i * lda + j + 1);
  }
  return true;
}

// x := x L^-T for one row x of length kb; lt = L^T (row j holds column j of L).
void SolveRowLt(float* x, const float* lt, int64_t kb) {
  for (int64_t j = 0; j < kb; ++j) {
    x[j] /= lt[j * kb + j];
    K().axpy(kb - j - 1, -x[j], lt + j * kb + j + 1, x + j + 1);
  }
}

}  // namespace

void ParallelFor(ThreadPool* pool, int64_t n, FunctionRef<void(size_t, size_t)> fn, size_t grain) {
  if (n <= 0) return;
  if (pool == nullptr || pool->size() == 1) {
    fn(0, Z(n));
    return;
  }
  pool->ParallelFor(Z(n), fn, grain);
}

void PackColumnPanels(const float* x, int64_t k, int64_t cols, int64_t ldx, float scale, float* panels,
                      ThreadPool* pool) {
  const int64_t np = (cols + kPanel - 1) / kPanel;
  ParallelFor(pool, np, [&](size_t p0, size_t p1) {
    for (int64_t p = static_cast<int64_t>(p0); p < static_cast<int64_t>(p1); ++p) {
      const int64_t c0 = p * kPanel, w = std::min(kPanel, cols - c0);
      float* out = panels + p * k * kPanel;
      for (int64_t kk = 0; kk < k; ++kk, out += kPanel) {
        const float* in = x + kk * ldx + c0;
        for (int64_t c = 0; c < w; ++c) out[c] = in[c] * scale;
        for (int64_t c = w; c < kPanel; ++c) out[c] = 0.0f;
      }
    }
  }, 1);
}

void PackRowPanels(const float* a, int64_t m, int64_t k, int64_t lda, float* panels, ThreadPool* pool) {
  const int64_t np = (m + kPanel - 1) / kPanel;
  ParallelFor(pool, np, [&](size_t p0, size_t p1) {
    for (int64_t p = static_cast<int64_t>(p0); p < static_cast<int64_t>(p1); ++p) {
      float* out = panels + p * k * kPanel;
      const int64_t r0 = p * kPanel, w = std::min(kPanel, m - r0);
      for (int64_t c = 0; c < w; ++c) {
        const float* in = a + (r0 + c) * lda;
        for (int64_t kk = 0; kk < k; ++kk) out[kk * kPanel + c] = in[kk];
      }
      for (int64_t c = w; c < kPanel; ++c)
        for (int64_t kk = 0; kk < k; ++kk) out[kk * kPanel + c] = 0.0f;
    }
  }, 1);
}

void SyrkPanels(const float* panels, int64_t n, int64_t k, float* c, int64_t ldc, GemmMode mode, Triangle tri,
                bool exact_diagonal, ThreadPool* pool) {
  const int64_t np = (n + kPanel - 1) / kPanel;
  // Tile pairs row by row (the A panel stays in cache along a row of tiles).
  std::vector<int32_t> pairs;
  pairs.reserve(Z(np * (np + 1)));
  for (int64_t pi = 0; pi < np; ++pi) {
    const int64_t lo = tri == Triangle::kUpper ? pi : 0, hi = tri == Triangle::kUpper ? np : pi + 1;
    for (int64_t pj = lo; pj < hi; ++pj) {
      pairs.push_back(static_cast<int32_t>(pi));
      pairs.push_back(static_cast<int32_t>(pj));
    }
  }
  const LinalgKernels& kern = K();
  ParallelFor(pool, static_cast<int64_t>(pairs.size() / 2), [&](size_t t0, size_t t1) {
    float tile[kPanel * kPanel];
    for (size_t t = t0; t < t1; ++t) {
      const int64_t pi = pairs[2 * t], pj = pairs[2 * t + 1];
      GemmArgs g;
      g.m = std::min(kPanel, n - pi * kPanel);
      g.n = std::min(kPanel, n - pj * kPanel);
      g.k = k;
      g.a = panels + pi * k * kPanel;
      g.a_rs = 1;
      g.a_ks = kPanel;
      g.b = panels + pj * k * kPanel;
      g.ldb = kPanel;
      float* ct = c + pi * kPanel * ldc + pj * kPanel;
      if (pi != pj || !exact_diagonal) {
        g.c = ct;
        g.ldc = ldc;
        kern.gemm(g, mode);
        continue;
      }
      g.c = tile;
      g.ldc = kPanel;
      kern.gemm(g, GemmMode::kSet);
      for (int64_t i = 0; i < g.m; ++i) {
        const int64_t j0 = tri == Triangle::kUpper ? i : 0, j1 = tri == Triangle::kUpper ? g.n : i + 1;
        for (int64_t j = j0; j < j1; ++j) {
          float& dst = ct[i * ldc + j];
          const float v = tile[i * kPanel + j];
          dst = mode == GemmMode::kSet ? v : mode == GemmMode::kAdd ? dst + v : dst - v;
        }
      }
    }
  }, 1);
}

bool CholeskyLower(float* a, int64_t n, int64_t lda, ThreadPool* pool, int64_t* bad_column) {
  std::vector<float> col(Z(kBlock)), lt(Z(kBlock * kBlock)), panels;
  for (int64_t k0 = 0; k0 < n; k0 += kBlock) {
    const int64_t kb = std::min(kBlock, n - k0);
    float* d = a + k0 * lda + k0;
    int64_t bad = 0;
    if (!FactorDiagonal(d, kb, lda, col.data(), &bad)) {
      *bad_column = k0 + bad;
      return false;
    }
    const int64_t m = n - k0 - kb;
    if (m == 0) break;
    for (int64_t i = 0; i < kb; ++i)
      for (int64_t j = 0; j < kb; ++j) lt[Z(j * kb + i)] = j <= i ? d[i * lda + j] : 0.0f;
    float* below = a + (k0 + kb) * lda + k0;
    ParallelFor(pool, m, [&](size_t r0, size_t r1) {
      for (size_t r = r0; r < r1; ++r) SolveRowLt(below + static_cast<int64_t>(r) * lda, lt.data(), kb);
    });
    panels.resize(Z(PanelFloats(m, kb)));
    PackRowPanels(below, m, kb, lda, panels.data(), pool);
    SyrkPanels(panels.data(), m, kb, below + kb, lda, GemmMode::kSub, Triangle::kLower, true, pool);
  }
  return true;
}

void InvertLowerTriangular(float* a, int64_t n, int64_t lda, ThreadPool* pool) {
  for (int64_t i = 0; i < n; ++i) std::fill(a + i * lda + i + 1, a + i * lda + n, 0.0f);
  const LinalgKernels& kern = K();
  std::vector<float> t(Z(kBlock * n)), lii(Z(kBlock * kBlock)), y(Z(kBlock * kBlock));
  constexpr int64_t kCols = 256;  // column chunk of the substitution (kBlock x kCols stays in L2)
  for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
    const int64_t ib = std::min(kBlock, n - i0);
    for (int64_t r = 0; r < ib; ++r)
      for (int64_t l = 0; l < ib; ++l) lii[Z(r * ib + l)] = l <= r ? a[(i0 + r) * lda + i0 + l] : 0.0f;
    if (i0 > 0) {
      // T = L[I, 0:i0] X[0:i0, 0:i0], column block J only needs k >= J's first column (X is lower).
      const int64_t nj = (i0 + kPanel - 1) / kPanel;
      ParallelFor(pool, nj, [&](size_t j0b, size_t j1b) {
        for (size_t jb = j0b; jb < j1b; ++jb) {
          const int64_t j0 = static_cast<int64_t>(jb) * kPanel;
          GemmArgs g;
          g.m = ib;
          g.n = std::min(kPanel, i0 - j0);
          g.k = i0 - j0;
          g.a = a + i0 * lda + j0;
          g.a_rs = lda;
          g.a_ks = 1;
          g.b = a + j0 * lda + j0;
          g.ldb = lda;
          g.c = t.data() + j0;
          g.ldc = n;
          kern.gemm(g, GemmMode::kSet);
        }
      }, 1);
      // X[I, 0:i0] = -L_II^-1 T, by forward substitution down the rows, columns in chunks.
      ParallelFor(pool, (i0 + kCols - 1) / kCols, [&](size_t c0b, size_t c1b) {
        for (size_t cb = c0b; cb < c1b; ++cb) {
          const int64_t c0 = static_cast<int64_t>(cb) * kCols, w = std::min(kCols, i0 - c0);
          for (int64_t r = 0; r < ib; ++r) {
            float* tr = t.data() + r * n + c0;
            for (int64_t l = 0; l < r; ++l) kern.axpy(w, -lii[Z(r * ib + l)], t.data() + l * n + c0, tr);
            const float dr = lii[Z(r * ib + r)];
            float* xr = a + (i0 + r) * lda + c0;
            for (int64_t c = 0; c < w; ++c) {
              tr[c] /= dr;
              xr[c] = -tr[c];
            }
          }
        }
      }, 1);
    }
    // X_II = L_II^-1, the same substitution on the identity.
    std::fill(y.begin(), y.end(), 0.0f);
    for (int64_t r = 0; r < ib; ++r) {
      float* yr = y.data() + r * ib;
      yr[r] = 1.0f;
      for (int64_t l = 0; l < r; ++l) kern.axpy(l + 1, -lii[Z(r * ib + l)], y.data() + l * ib, yr);
      const float dr = lii[Z(r * ib + r)];
      for (int64_t c = 0; c <= r; ++c) yr[c] /= dr;
      std::memcpy(a + (i0 + r) * lda + i0, yr, Z(r + 1) * sizeof(float));
    }
  }
}

void PermuteSymmetric(float* a, int64_t n, const std::vector<int32_t>& q, ThreadPool* pool) {
  LOWBIT_CHECK(static_cast<int64_t>(q.size()) == n);
  std::vector<float> row(Z(n));
  std::vector<char> done(Z(n), 0);
  // Rows, following the permutation's cycles: row i <- row q[i].
  for (int64_t s = 0; s < n; ++s) {
    if (done[Z(s)]) continue;
    std::memcpy(row.data(), a + s * n, Z(n) * sizeof(float));
    int64_t i = s;
    while (true) {
      done[Z(i)] = 1;
      const int64_t j = q[Z(i)];
      if (j == s) {
        std::memcpy(a + i * n, row.data(), Z(n) * sizeof(float));
        break;
      }
      std::memcpy(a + i * n, a + j * n, Z(n) * sizeof(float));
      i = j;
    }
  }
  ParallelFor(pool, n, [&](size_t r0, size_t r1) {
    std::vector<float> buf(Z(n));
    for (size_t r = r0; r < r1; ++r) {
      float* ar = a + static_cast<int64_t>(r) * n;
      for (int64_t j = 0; j < n; ++j) buf[Z(j)] = ar[q[Z(j)]];
      std::memcpy(ar, buf.data(), Z(n) * sizeof(float));
    }
  });
}

void Rotate180(float* a, int64_t n) {
  const int64_t total = n * n;
  for (int64_t i = 0, j = total - 1; i < j; ++i, --j) std::swap(a[i], a[j]);
}

void MirrorUpperToLower(float* a, int64_t n, ThreadPool* pool) {
  ParallelFor(pool, n, [&](size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; ++r) {
      const int64_t i = static_cast<int64_t>(r);
      for (int64_t j = 0; j < i; ++j) a[i * n + j] = a[j * n + i];
    }
  });
}

}  // namespace lowbit::linalg

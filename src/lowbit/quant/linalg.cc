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

// y = L^-1 for the lower triangular kb x kb block l (row stride ldl), by forward substitution on the
// identity; y is kb x kb, zero above the diagonal.
void InvertSmallLower(const float* l, int64_t kb, int64_t ldl, float* y) {
  std::fill(y, y + kb * kb, 0.0f);
  for (int64_t r = 0; r < kb; ++r) {
    float* yr = y + r * kb;
    yr[r] = 1.0f;
    for (int64_t c = 0; c < r; ++c) K().axpy(c + 1, -l[r * ldl + c], y + c * kb, yr);
    const float d = l[r * ldl + r];
    for (int64_t c = 0; c <= r; ++c) yr[c] /= d;
  }
}

// The 32 x 32 tiles (panel pairs pi, pj) of an n x n matrix that touch `tri`, row by row (the A
// panel stays in cache along a row of tiles), flattened as pi, pj, pi, pj, ...
std::vector<int32_t> TilePairs(int64_t n, Triangle tri) {
  const int64_t np = (n + kPanel - 1) / kPanel;
  std::vector<int32_t> pairs;
  pairs.reserve(Z(np * (np + 1)));
  for (int64_t pi = 0; pi < np; ++pi) {
    const int64_t lo = tri == Triangle::kUpper ? pi : 0, hi = tri == Triangle::kUpper ? np : pi + 1;
    for (int64_t pj = lo; pj < hi; ++pj) {
      pairs.push_back(static_cast<int32_t>(pi));
      pairs.push_back(static_cast<int32_t>(pj));
    }
  }
  return pairs;
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
  const std::vector<int32_t> pairs = TilePairs(n, tri);
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

void SyrkPanelsChunks(const float* panels, int64_t stride, int64_t n_chunks, int64_t n, int64_t k, int64_t k_last,
                      float beta, float* c, int64_t ldc, GemmMode mode, Triangle tri, ThreadPool* pool) {
  LOWBIT_CHECK(mode != GemmMode::kSet);
  const std::vector<int32_t> pairs = TilePairs(n, tri);
  const LinalgKernels& kern = K();
  ParallelFor(pool, static_cast<int64_t>(pairs.size() / 2), [&](size_t t0, size_t t1) {
    for (size_t t = t0; t < t1; ++t) {
      const int64_t pi = pairs[2 * t], pj = pairs[2 * t + 1];
      if (beta != 1.0f) {
        const int64_t m = std::min(kPanel, n - pi * kPanel), w = std::min(kPanel, n - pj * kPanel);
        for (int64_t i = 0; i < m; ++i) {
          float* row = c + (pi * kPanel + i) * ldc + pj * kPanel;
          for (int64_t j = 0; j < w; ++j) row[j] *= beta;
        }
      }
      for (int64_t j = 0; j < n_chunks; ++j) {
        const int64_t kj = j == n_chunks - 1 ? k_last : k;
        GemmArgs g;
        g.m = std::min(kPanel, n - pi * kPanel);
        g.n = std::min(kPanel, n - pj * kPanel);
        g.k = kj;
        g.a = panels + j * stride + pi * kj * kPanel;
        g.a_rs = 1;
        g.a_ks = kPanel;
        g.b = panels + j * stride + pj * kj * kPanel;
        g.ldb = kPanel;
        g.c = c + pi * kPanel * ldc + pj * kPanel;
        g.ldc = ldc;
        kern.gemm(g, mode);
      }
    }
  }, 1);
}

bool CholeskyLower(float* a, int64_t n, int64_t lda, ThreadPool* pool, int64_t* bad_column) {
  std::vector<float> col(Z(kBlock)), lt(Z(kBlock * kBlock)), inv(Z(kBlock * kBlock)), tmp, panels;
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
    // Panel: A21 := A21 L11^-T as one product with (L11^-1)^T (twice the flops of a substitution, but
    // at gemm speed instead of a dependent chain of short axpys per row).
    InvertSmallLower(d, kb, lda, inv.data());
    for (int64_t i = 0; i < kb; ++i)
      for (int64_t j = 0; j < kb; ++j) lt[Z(i * kb + j)] = inv[Z(j * kb + i)];
    float* below = a + (k0 + kb) * lda + k0;
    tmp.resize(Z(m * kb));
    constexpr int64_t kRows = 64;
    ParallelFor(pool, (m + kRows - 1) / kRows, [&](size_t t0, size_t t1) {
      for (size_t t = t0; t < t1; ++t) {
        const int64_t r0 = static_cast<int64_t>(t) * kRows, rn = std::min(kRows, m - r0);
        GemmArgs g;
        g.m = rn;
        g.n = kb;
        g.k = kb;
        g.a = below + r0 * lda;
        g.a_rs = lda;
        g.a_ks = 1;
        g.b = lt.data();
        g.ldb = kb;
        g.c = tmp.data() + r0 * kb;
        g.ldc = kb;
        K().gemm(g, GemmMode::kSet);
        for (int64_t r = 0; r < rn; ++r) std::memcpy(below + (r0 + r) * lda, tmp.data() + (r0 + r) * kb, Z(kb) * sizeof(float));
      }
    }, 1);
    panels.resize(Z(PanelFloats(m, kb)));
    PackRowPanels(below, m, kb, lda, panels.data(), pool);
    SyrkPanels(panels.data(), m, kb, below + kb, lda, GemmMode::kSub, Triangle::kLower, true, pool);
  }
  return true;
}

void InvertLowerTriangular(float* a, int64_t n, int64_t lda, ThreadPool* pool) {
  for (int64_t i = 0; i < n; ++i) std::fill(a + i * lda + i + 1, a + i * lda + n, 0.0f);
  const LinalgKernels& kern = K();
  std::vector<float> t(Z(kBlock * n)), lii(Z(kBlock * kBlock)), y(Z(kBlock * kBlock)), apack(Z(kBlock * n));
  constexpr int64_t kCols = 256;  // column chunk of the second product
  for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
    const int64_t ib = std::min(kBlock, n - i0);
    for (int64_t r = 0; r < ib; ++r)
      for (int64_t l = 0; l < ib; ++l) lii[Z(r * ib + l)] = l <= r ? a[(i0 + r) * lda + i0 + l] : 0.0f;
    if (i0 > 0) {
      // T = L[I, 0:i0] X[0:i0, 0:i0]; column panel J only needs k >= its first column (X is lower).
      // L's row block is packed k-major (the kernel's A broadcasts are adjacent), each panel of X
      // into k x 32 (its B rows are contiguous instead of one page apart).
      for (int64_t r0 = 0; r0 < ib; r0 += 16) {  // 16 rows at a time: one written line per k
        const int64_t rn = std::min<int64_t>(16, ib - r0);
        for (int64_t k = 0; k < i0; ++k)
          for (int64_t r = r0; r < r0 + rn; ++r) apack[Z(k * ib + r)] = a[(i0 + r) * lda + k];
      }
      const int64_t nj = (i0 + kPanel - 1) / kPanel;
      ParallelFor(pool, nj, [&](size_t j0b, size_t j1b) {
        std::vector<float> bpack(Z(i0 * kPanel));
        for (size_t jb = j0b; jb < j1b; ++jb) {
          const int64_t j0 = static_cast<int64_t>(jb) * kPanel, w = std::min(kPanel, i0 - j0);
          for (int64_t k = j0; k < i0; ++k) std::memcpy(bpack.data() + (k - j0) * kPanel, a + k * lda + j0, Z(w) * sizeof(float));
          GemmArgs g;
          g.m = ib;
          g.n = w;
          g.k = i0 - j0;
          g.a = apack.data() + j0 * ib;
          g.a_rs = 1;
          g.a_ks = ib;
          g.b = bpack.data();
          g.ldb = kPanel;
          g.c = t.data() + j0;
          g.ldc = n;
          kern.gemm(g, GemmMode::kSet);
        }
      }, 1);
    }
    // X_II = L_II^-1, and X[I, 0:i0] = -X_II T as one product (twice the flops of a substitution,
    // at gemm speed).
    InvertSmallLower(lii.data(), ib, ib, y.data());
    if (i0 > 0) {
      for (float& v : y) v = -v;
      ParallelFor(pool, (i0 + kCols - 1) / kCols, [&](size_t c0b, size_t c1b) {
        for (size_t cb = c0b; cb < c1b; ++cb) {
          const int64_t c0 = static_cast<int64_t>(cb) * kCols;
          GemmArgs g;
          g.m = ib;
          g.n = std::min(kCols, i0 - c0);
          g.k = ib;
          g.a = y.data();
          g.a_rs = ib;
          g.a_ks = 1;
          g.b = t.data() + c0;
          g.ldb = n;
          g.c = a + i0 * lda + c0;
          g.ldc = lda;
          kern.gemm(g, GemmMode::kSet);
        }
      }, 1);
      for (float& v : y) v = -v;
    }
    for (int64_t r = 0; r < ib; ++r) std::memcpy(a + (i0 + r) * lda + i0, y.data() + r * ib, Z(r + 1) * sizeof(float));
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

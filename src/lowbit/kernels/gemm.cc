#include "lowbit/kernels/gemm.h"

#include <algorithm>
#include <vector>

#include "lowbit/base/check.h"

namespace lowbit {
namespace {

// Blocking: C is done in panels of kNc columns and slices of kKc of p; the panel's B (kKc x kNc,
// 512 KiB) is packed once by the calling thread and shared, and the threads take row tiles of kMc
// rows (multiples of every table's MR), each packing its A rows (96 KiB, in L2) and running them
// against every NR-column sliver of B (kKc x NR, 32 KiB for NR = 32: in L1 while the tile's row
// slivers pass).
constexpr int64_t kMc = 96, kNc = 512, kKc = 256;

inline float At(const GemmArgs& g, int64_t i, int64_t p) { return g.a_trans ? g.a[p * g.lda + i] : g.a[i * g.lda + p]; }
inline float Bt(const GemmArgs& g, int64_t p, int64_t j) { return g.b_trans ? g.b[j * g.ldb + p] : g.b[p * g.ldb + j]; }

// A rows [i0, i0 + mc) x p in [p0, p0 + kc) as slivers of mr rows: dst[s][p][r], zero past mc.
void PackA(const GemmArgs& g, int64_t i0, int64_t mc, int64_t p0, int64_t kc, int mr, float* dst) {
  for (int64_t s = 0; s * mr < mc; ++s) {
    float* d = dst + s * kc * mr;
    const int64_t rows = std::min<int64_t>(mr, mc - s * mr);
    if (g.a_trans) {
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = g.a + (p0 + p) * g.lda + i0 + s * mr;
        int64_t r = 0;
        for (; r < rows; ++r) d[p * mr + r] = src[r];
        for (; r < mr; ++r) d[p * mr + r] = 0.0f;
      }
    } else {
      for (int64_t r = 0; r < mr; ++r) {
        if (r >= rows) {
          for (int64_t p = 0; p < kc; ++p) d[p * mr + r] = 0.0f;
          continue;
        }
        const float* src = g.a + (i0 + s * mr + r) * g.lda + p0;
        for (int64_t p = 0; p < kc; ++p) d[p * mr + r] = src[p];
      }
    }
  }
}

// B columns [j0, j0 + nc) x p in [p0, p0 + kc) as slivers of nr columns: dst[s][p][c], zero past nc.
void PackB(const GemmArgs& g, int64_t j0, int64_t nc, int64_t p0, int64_t kc, int nr, float* dst) {
  for (int64_t s = 0; s * nr < nc; ++s) {
    float* d = dst + s * kc * nr;
    const int64_t cols = std::min<int64_t>(nr, nc - s * nr);
    if (g.b_trans) {
      for (int64_t c = 0; c < nr; ++c) {
        if (c >= cols) {
          for (int64_t p = 0; p < kc; ++p) d[p * nr + c] = 0.0f;
          continue;
        }
        const float* src = g.b + (j0 + s * nr + c) * g.ldb + p0;
        for (int64_t p = 0; p < kc; ++p) d[p * nr + c] = src[p];
      }
    } else {
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = g.b + (p0 + p) * g.ldb + j0 + s * nr;
        int64_t c = 0;
        for (; c < cols; ++c) d[p * nr + c] = src[c];
        for (; c < nr; ++c) d[p * nr + c] = 0.0f;
      }
    }
  }
}

void RefMicro(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate, int mr, int nr) {
  for (int i = 0; i < mr; ++i) {
    for (int j = 0; j < nr; ++j) {
      float s = 0.0f;
      for (int64_t p = 0; p < kc; ++p) s += a[p * mr + i] * b[p * nr + j];
      c[i * ldc + j] = accumulate ? c[i * ldc + j] + s : s;
    }
  }
}

constexpr int kRefMr = 4, kRefNr = 8;
void RefMicroFixed(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate) {
  RefMicro(kc, a, b, c, ldc, accumulate, kRefMr, kRefNr);
}

// Rows [i0, i0 + mc) of C against the packed B panel (columns [j0, j0 + nc), one slice of p).
void RowTile(const GemmKernel& kr, const GemmArgs& g, int64_t i0, int64_t mc, int64_t j0, int64_t nc, int64_t p0, int64_t kc,
             const float* bpack, bool acc, std::vector<float>& apack) {
  const int mr = kr.mr, nr = kr.nr;
  const int64_t ms = (mc + mr - 1) / mr, ns = (nc + nr - 1) / nr;
  if (apack.size() < static_cast<size_t>(ms * mr * kc)) apack.resize(static_cast<size_t>(ms * mr * kc));
  PackA(g, i0, mc, p0, kc, mr, apack.data());
  float edge[32 * 32];
  LOWBIT_CHECK(mr * nr <= 32 * 32);
  for (int64_t js = 0; js < ns; ++js) {
    const float* bs = bpack + js * kc * nr;
    const int64_t cols = std::min<int64_t>(nr, nc - js * nr);
    for (int64_t is = 0; is < ms; ++is) {
      const float* as = apack.data() + is * kc * mr;
      const int64_t rows = std::min<int64_t>(mr, mc - is * mr);
      float* c = g.c + (i0 + is * mr) * g.ldc + j0 + js * nr;
      if (rows == mr && cols == nr) {
        kr.micro(kc, as, bs, c, g.ldc, acc);
        continue;
      }
      kr.micro(kc, as, bs, edge, nr, false);
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t j = 0; j < cols; ++j) c[r * g.ldc + j] = acc ? c[r * g.ldc + j] + edge[r * nr + j] : edge[r * nr + j];
      }
    }
  }
}

}  // namespace

const GemmKernel& GemmKernelFor(Isa isa) {
  static const GemmKernel ref{kRefMr, kRefNr, RefMicroFixed};
  static const GemmKernel avx2 = internal::Avx2GemmKernel();
  static const GemmKernel avx512 = internal::Avx512GemmKernel();
  switch (isa) {
    case Isa::kAvx512: return avx512;
    case Isa::kAvx2: return avx2;
    default: return ref;
  }
}

const GemmKernel& ActiveGemmKernel() {
  static const GemmKernel& k = GemmKernelFor(ActiveIsa());
  return k;
}

void GemmF32(const GemmArgs& g, ThreadPool* pool) { GemmF32(ActiveGemmKernel(), g, pool); }

void GemmF32(const GemmKernel& kr, const GemmArgs& g, ThreadPool* pool) {
  if (g.m <= 0 || g.n <= 0) return;
  if (g.k <= 0) {
    if (!g.accumulate) {
      for (int64_t i = 0; i < g.m; ++i) std::fill(g.c + i * g.ldc, g.c + i * g.ldc + g.n, 0.0f);
    }
    return;
  }
  const bool threaded = pool != nullptr && pool->size() > 1;
  // Row tiles: kMc rows, fewer when that leaves too few tiles to balance the threads.
  int64_t mc = kMc;
  if (threaded) {
    const int64_t want = 4 * static_cast<int64_t>(pool->size());
    if ((g.m + mc - 1) / mc < want) mc = std::max<int64_t>(kr.mr, (g.m / want + kr.mr - 1) / kr.mr * kr.mr);
  }
  const int64_t mb = (g.m + mc - 1) / mc;
  thread_local std::vector<float> bpack;  // the caller's: shared read-only by the tiles of a panel
  for (int64_t j0 = 0; j0 < g.n; j0 += kNc) {
    const int64_t nc = std::min(kNc, g.n - j0), ns = (nc + kr.nr - 1) / kr.nr;
    for (int64_t p0 = 0; p0 < g.k; p0 += kKc) {
      const int64_t kc = std::min(kKc, g.k - p0);
      if (bpack.size() < static_cast<size_t>(ns * kr.nr * kc)) bpack.resize(static_cast<size_t>(ns * kr.nr * kc));
      PackB(g, j0, nc, p0, kc, kr.nr, bpack.data());
      const bool acc = g.accumulate || p0 > 0;
      const float* bp = bpack.data();
      auto run = [&](size_t begin, size_t end) {
        thread_local std::vector<float> apack;  // grows once per thread
        for (size_t t = begin; t < end; ++t) {
          const int64_t i0 = static_cast<int64_t>(t) * mc;
          RowTile(kr, g, i0, std::min(mc, g.m - i0), j0, nc, p0, kc, bp, acc, apack);
        }
      };
      if (threaded && mb > 1) pool->ParallelFor(static_cast<size_t>(mb), run, 1);
      else run(0, static_cast<size_t>(mb));
    }
  }
}

void GemmF32Ref(const GemmArgs& g) {
  for (int64_t i = 0; i < g.m; ++i) {
    for (int64_t j = 0; j < g.n; ++j) {
      float s = 0.0f;
      for (int64_t p = 0; p < g.k; ++p) s += At(g, i, p) * Bt(g, p, j);
      float& c = g.c[i * g.ldc + j];
      c = g.accumulate ? c + s : s;
    }
  }
}

}  // namespace lowbit

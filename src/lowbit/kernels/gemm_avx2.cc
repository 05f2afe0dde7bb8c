// The AVX2 GEMM micro-kernel: 6 rows x 16 columns (12 ymm accumulators), gemm_micro.inc.
#include <immintrin.h>

#include "lowbit/kernels/gemm.h"

namespace lowbit {
namespace {

using GemmVec = __m256;
constexpr int kLanes = 8, kMr = 6, kVecs = 2;
inline GemmVec VLoad(const float* p) { return _mm256_loadu_ps(p); }
inline void VStore(float* p, GemmVec v) { _mm256_storeu_ps(p, v); }
inline GemmVec VBroadcast(float x) { return _mm256_set1_ps(x); }
inline GemmVec VFma(GemmVec a, GemmVec b, GemmVec c) { return _mm256_fmadd_ps(a, b, c); }
inline GemmVec VAdd(GemmVec a, GemmVec b) { return _mm256_add_ps(a, b); }
inline GemmVec VZero() { return _mm256_setzero_ps(); }

#include "lowbit/kernels/gemm_micro.inc"

}  // namespace

namespace internal {
GemmKernel Avx2GemmKernel() { return {kMr, kNr, Micro}; }
}  // namespace internal
}  // namespace lowbit

// The AVX-512 GEMM micro-kernel: 8 rows x 32 columns (16 zmm accumulators), gemm_micro.inc.
#include <immintrin.h>

#include "lowbit/kernels/gemm.h"

namespace lowbit {
namespace {

using GemmVec = __m512;
constexpr int kLanes = 16, kMr = 8, kVecs = 2;
inline GemmVec VLoad(const float* p) { return _mm512_loadu_ps(p); }
inline void VStore(float* p, GemmVec v) { _mm512_storeu_ps(p, v); }
inline GemmVec VBroadcast(float x) { return _mm512_set1_ps(x); }
inline GemmVec VFma(GemmVec a, GemmVec b, GemmVec c) { return _mm512_fmadd_ps(a, b, c); }
inline GemmVec VAdd(GemmVec a, GemmVec b) { return _mm512_add_ps(a, b); }
inline GemmVec VZero() { return _mm512_setzero_ps(); }

#include "lowbit/kernels/gemm_micro.inc"

}  // namespace

namespace internal {
GemmKernel Avx512GemmKernel() { return {kMr, kNr, Micro}; }
}  // namespace internal
}  // namespace lowbit

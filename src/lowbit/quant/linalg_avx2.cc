// AVX2 + FMA row of the linear-algebra kernel table (linalg_x86.inc): 4 x 16 register tiles.
#include "lowbit/quant/linalg_x86.inc"

namespace lowbit {
namespace {

struct V256 {
  using T = __m256;
  static constexpr int kWidth = 8, kMR = 4, kNV = 2;  // 8 accumulators of the 16 ymm registers
  static T Zero() { return _mm256_setzero_ps(); }
  static T Load(const float* p) { return _mm256_loadu_ps(p); }
  static __m256i Mask(int n) { return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }
  static T LoadN(const float* p, int n) { return _mm256_maskload_ps(p, Mask(n)); }
  static void Store(float* p, T v) { _mm256_storeu_ps(p, v); }
  static void StoreN(float* p, T v, int n) { _mm256_maskstore_ps(p, Mask(n), v); }
  static T Bcast(float a) { return _mm256_set1_ps(a); }
  static T Fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static T Add(T a, T b) { return _mm256_add_ps(a, b); }
  static T Sub(T a, T b) { return _mm256_sub_ps(a, b); }
};

}  // namespace

namespace internal {
const LinalgKernels& Avx2LinalgKernels() {
  static const LinalgKernels k{Gemm<V256>, Axpy<V256>, "avx2"};
  return k;
}
}  // namespace internal
}  // namespace lowbit

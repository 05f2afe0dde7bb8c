// AVX-512 row of the linear-algebra kernel table (linalg_x86.inc): 8 x 32 register tiles (16 of the
// 32 zmm registers accumulate; per k two loads of B and eight broadcast FMAs from memory).
#include "lowbit/quant/linalg_x86.inc"

namespace lowbit {
namespace {

struct V512 {
  using T = __m512;
  static constexpr int kWidth = 16, kMR = 8, kNV = 2;
  static T Zero() { return _mm512_setzero_ps(); }
  static T Load(const float* p) { return _mm512_loadu_ps(p); }
  static __mmask16 Mask(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static T LoadN(const float* p, int n) { return _mm512_maskz_loadu_ps(Mask(n), p); }
  static void Store(float* p, T v) { _mm512_storeu_ps(p, v); }
  static void StoreN(float* p, T v, int n) { _mm512_mask_storeu_ps(p, Mask(n), v); }
  static T Bcast(float a) { return _mm512_set1_ps(a); }
  static T Fma(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static T Add(T a, T b) { return _mm512_add_ps(a, b); }
  static T Sub(T a, T b) { return _mm512_sub_ps(a, b); }
};

}  // namespace

namespace internal {
const LinalgKernels& Avx512LinalgKernels() {
  static const LinalgKernels k{Gemm<V512>, Axpy<V512>, "avx512"};
  return k;
}
}  // namespace internal
}  // namespace lowbit

// The fp32 FMA peak of one core with AVX-512 (bench/gptq_bench.cc): 16 independent FMA chains in
// registers (more than FMA latency x FMA pipes on current cores), no loads. Returns the flops done.
#include <immintrin.h>

#include <cstdint>

namespace lowbit::bench {

double FmaPeakAvx512(int64_t iters) {
  __m512 c0 = _mm512_set1_ps(0e-3f);
  __m512 c1 = _mm512_set1_ps(1e-3f);
  __m512 c2 = _mm512_set1_ps(2e-3f);
  __m512 c3 = _mm512_set1_ps(3e-3f);
  __m512 c4 = _mm512_set1_ps(4e-3f);
  __m512 c5 = _mm512_set1_ps(5e-3f);
  __m512 c6 = _mm512_set1_ps(6e-3f);
  __m512 c7 = _mm512_set1_ps(7e-3f);
  __m512 c8 = _mm512_set1_ps(8e-3f);
  __m512 c9 = _mm512_set1_ps(9e-3f);
  __m512 c10 = _mm512_set1_ps(10e-3f);
  __m512 c11 = _mm512_set1_ps(11e-3f);
  __m512 c12 = _mm512_set1_ps(12e-3f);
  __m512 c13 = _mm512_set1_ps(13e-3f);
  __m512 c14 = _mm512_set1_ps(14e-3f);
  __m512 c15 = _mm512_set1_ps(15e-3f);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it) {
    c0 = _mm512_fmadd_ps(c0, a, b);
    c1 = _mm512_fmadd_ps(c1, a, b);
    c2 = _mm512_fmadd_ps(c2, a, b);
    c3 = _mm512_fmadd_ps(c3, a, b);
    c4 = _mm512_fmadd_ps(c4, a, b);
    c5 = _mm512_fmadd_ps(c5, a, b);
    c6 = _mm512_fmadd_ps(c6, a, b);
    c7 = _mm512_fmadd_ps(c7, a, b);
    c8 = _mm512_fmadd_ps(c8, a, b);
    c9 = _mm512_fmadd_ps(c9, a, b);
    c10 = _mm512_fmadd_ps(c10, a, b);
    c11 = _mm512_fmadd_ps(c11, a, b);
    c12 = _mm512_fmadd_ps(c12, a, b);
    c13 = _mm512_fmadd_ps(c13, a, b);
    c14 = _mm512_fmadd_ps(c14, a, b);
    c15 = _mm512_fmadd_ps(c15, a, b);
  }
  c0 = _mm512_add_ps(c0, c1); c0 = _mm512_add_ps(c0, c2); c0 = _mm512_add_ps(c0, c3); c0 = _mm512_add_ps(c0, c4); c0 = _mm512_add_ps(c0, c5); c0 = _mm512_add_ps(c0, c6); c0 = _mm512_add_ps(c0, c7); c0 = _mm512_add_ps(c0, c8); c0 = _mm512_add_ps(c0, c9); c0 = _mm512_add_ps(c0, c10); c0 = _mm512_add_ps(c0, c11); c0 = _mm512_add_ps(c0, c12); c0 = _mm512_add_ps(c0, c13); c0 = _mm512_add_ps(c0, c14); c0 = _mm512_add_ps(c0, c15);
  float out[16];
  _mm512_storeu_ps(out, c0);
  volatile float sink = out[0];
  (void)sink;
  return static_cast<double>(iters) * 16 * 16 * 2;
}

}  // namespace lowbit::bench

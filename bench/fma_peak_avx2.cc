// The fp32 FMA peak of one core with AVX2 (bench/gptq_bench.cc): 12 independent FMA chains in
// registers (more than FMA latency x FMA pipes on current cores), no loads. Returns the flops done.
#include <immintrin.h>

#include <cstdint>

namespace lowbit::bench {

double FmaPeakAvx2(int64_t iters) {
  __m256 c0 = _mm256_set1_ps(0e-3f);
  __m256 c1 = _mm256_set1_ps(1e-3f);
  __m256 c2 = _mm256_set1_ps(2e-3f);
  __m256 c3 = _mm256_set1_ps(3e-3f);
  __m256 c4 = _mm256_set1_ps(4e-3f);
  __m256 c5 = _mm256_set1_ps(5e-3f);
  __m256 c6 = _mm256_set1_ps(6e-3f);
  __m256 c7 = _mm256_set1_ps(7e-3f);
  __m256 c8 = _mm256_set1_ps(8e-3f);
  __m256 c9 = _mm256_set1_ps(9e-3f);
  __m256 c10 = _mm256_set1_ps(10e-3f);
  __m256 c11 = _mm256_set1_ps(11e-3f);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it) {
    c0 = _mm256_fmadd_ps(c0, a, b);
    c1 = _mm256_fmadd_ps(c1, a, b);
    c2 = _mm256_fmadd_ps(c2, a, b);
    c3 = _mm256_fmadd_ps(c3, a, b);
    c4 = _mm256_fmadd_ps(c4, a, b);
    c5 = _mm256_fmadd_ps(c5, a, b);
    c6 = _mm256_fmadd_ps(c6, a, b);
    c7 = _mm256_fmadd_ps(c7, a, b);
    c8 = _mm256_fmadd_ps(c8, a, b);
    c9 = _mm256_fmadd_ps(c9, a, b);
    c10 = _mm256_fmadd_ps(c10, a, b);
    c11 = _mm256_fmadd_ps(c11, a, b);
  }
  c0 = _mm256_add_ps(c0, c1); c0 = _mm256_add_ps(c0, c2); c0 = _mm256_add_ps(c0, c3); c0 = _mm256_add_ps(c0, c4); c0 = _mm256_add_ps(c0, c5); c0 = _mm256_add_ps(c0, c6); c0 = _mm256_add_ps(c0, c7); c0 = _mm256_add_ps(c0, c8); c0 = _mm256_add_ps(c0, c9); c0 = _mm256_add_ps(c0, c10); c0 = _mm256_add_ps(c0, c11);
  float out[8];
  _mm256_storeu_ps(out, c0);
  volatile float sink = out[0];
  (void)sink;
  return static_cast<double>(iters) * 12 * 8 * 2;
}

}  // namespace lowbit::bench

// AVX2 + FMA + F16C row dot products. Compiled with the AVX2 flags (cmake/isa.cmake).
#include <immintrin.h>

#include "lowbit/kernels/dot.h"
#include "lowbit/numeric/blocks.h"
#include "lowbit/numeric/half.h"

namespace lowbit {
namespace {

inline float HSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

float DotF32(const uint8_t* row, const float* x, int64_t n) {
  const auto* w = reinterpret_cast<const float*>(row);
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
    a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
    a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
  }
  for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
  float s = HSum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; i < n; ++i) s += w[i] * x[i];
  return s;
}

float DotF16(const uint8_t* row, const float* x, int64_t n) {
  const auto* w = reinterpret_cast<const uint16_t*>(row);
  __m256 a0 = _mm256_setzero_ps(), a1 = a0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i))), _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i + 8))), _mm256_loadu_ps(x + i + 8), a1);
  }
  float s = HSum(_mm256_add_ps(a0, a1));
  for (; i < n; ++i) s += Fp16ToFp32(w[i]) * x[i];
  return s;
}

// int8 values 8 at a time as floats.
inline __m256 I8x8(const int8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

float DotQ8_0(const uint8_t* row, const float* x, int64_t n) {
  const auto* b = reinterpret_cast<const BlockQ8_0*>(row);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n; i += 32, ++b, x += 32) {
    __m256 s = _mm256_mul_ps(I8x8(b->qs), _mm256_loadu_ps(x));
    s = _mm256_fmadd_ps(I8x8(b->qs + 8), _mm256_loadu_ps(x + 8), s);
    s = _mm256_fmadd_ps(I8x8(b->qs + 16), _mm256_loadu_ps(x + 16), s);
    s = _mm256_fmadd_ps(I8x8(b->qs + 24), _mm256_loadu_ps(x + 24), s);
    acc = _mm256_fmadd_ps(_mm256_set1_ps(Fp16ToFp32(b->d)), s, acc);
  }
  return HSum(acc);
}

float DotQ4_0(const uint8_t* row, const float* x, int64_t n) {
  const auto* b = reinterpret_cast<const BlockQ4_0*>(row);
  __m256 acc = _mm256_setzero_ps();
  const __m128i low = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
  for (int64_t i = 0; i < n; i += 32, ++b, x += 32) {
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b->qs));
    alignas(16) int8_t v[32];
    _mm_store_si128(reinterpret_cast<__m128i*>(v), _mm_sub_epi8(_mm_and_si128(q, low), eight));
    _mm_store_si128(reinterpret_cast<__m128i*>(v + 16), _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(q, 4), low), eight));
    __m256 s = _mm256_mul_ps(I8x8(v), _mm256_loadu_ps(x));
    s = _mm256_fmadd_ps(I8x8(v + 8), _mm256_loadu_ps(x + 8), s);
    s = _mm256_fmadd_ps(I8x8(v + 16), _mm256_loadu_ps(x + 16), s);
    s = _mm256_fmadd_ps(I8x8(v + 24), _mm256_loadu_ps(x + 24), s);
    acc = _mm256_fmadd_ps(_mm256_set1_ps(Fp16ToFp32(b->d)), s, acc);
  }
  return HSum(acc);
}

}  // namespace

namespace internal {
void FillAvx2DotKernels(DotKernels* k) {
  k->row[static_cast<uint32_t>(GgmlType::kF32)] = DotF32;
  k->row[static_cast<uint32_t>(GgmlType::kF16)] = DotF16;
  k->row[static_cast<uint32_t>(GgmlType::kQ8_0)] = DotQ8_0;
  k->row[static_cast<uint32_t>(GgmlType::kQ4_0)] = DotQ4_0;
}
}  // namespace internal

}  // namespace lowbit

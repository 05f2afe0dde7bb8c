// AVX2 + F16C array conversions. Compiled with -mavx2 -mfma -mf16c (cmake/isa.cmake).
#include <immintrin.h>

#include "lowbit/numeric/convert.h"
#include "lowbit/numeric/half.h"

namespace lowbit {
namespace {

void F16ToF32(const uint16_t* s, float* d, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));
    _mm256_storeu_ps(d + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; ++i) d[i] = Fp16ToFp32(s[i]);
}

void F32ToF16(const float* s, uint16_t* d, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i), h);
  }
  for (; i < n; ++i) d[i] = Fp32ToFp16(s[i]);
}

void Bf16ToF32(const uint16_t* s, float* d, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i), _mm256_slli_epi32(w, 16));
  }
  for (; i < n; ++i) d[i] = Bf16ToFp32(s[i]);
}

// Round to nearest even on the bit pattern; NaN becomes quiet NaN (x >> 16 | 0x40).
inline __m256i F32ToBf16x8(__m256i x) {
  const __m256i abs = _mm256_and_si256(x, _mm256_set1_epi32(0x7fffffff));
  const __m256i is_nan = _mm256_cmpgt_epi32(abs, _mm256_set1_epi32(0x7f800000));
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
  const __m256i rounded =
      _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(x, _mm256_set1_epi32(0x7fff)), lsb), 16);
  const __m256i nan = _mm256_or_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(0x40));
  return _mm256_blendv_epi8(rounded, nan, is_nan);
}

void F32ToBf16(const float* s, uint16_t* d, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256i a = F32ToBf16x8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i)));
    __m256i b = F32ToBf16x8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i + 8)));
    __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xd8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i), packed);
  }
  for (; i < n; ++i) d[i] = Fp32ToBf16(s[i]);
}

}  // namespace

namespace internal {
const HalfConvertKernels kHalfConvertAvx2 = {F16ToF32, F32ToF16, Bf16ToF32, F32ToBf16};
}  // namespace internal

}  // namespace lowbit

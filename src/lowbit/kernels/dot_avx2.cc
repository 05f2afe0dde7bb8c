// AVX2 + FMA + F16C row dot products. Compiled with the AVX2 flags (cmake/isa.cmake).
//
// Integer types multiply 32 weight codes by 32 int8 activations with maddubs (unsigned x signed ->
// pairs of i16) and madd (-> i32), exactly the integer sums of the reference; scales are applied
// per block (or per 16/32-element group as i16 multipliers inside madd) and accumulated in float.
// Bounds that keep maddubs from saturating: activations are in [-127, 127] (Q8_0/Q8_1/Q8_K never
// produce -128); unsigned codes are < 64, so a pair sums to < 2 * 63 * 127; signed codes go through
// the sign trick (|w| * sign(y, w)), < 2 * 128 * 127.
#include <immintrin.h>

#include <cstring>

#include "lowbit/kernels/dot.h"
#include "lowbit/numeric/blocks.h"
#include "lowbit/numeric/half.h"
#include "lowbit/numeric/iq_tables.h"

namespace lowbit {
namespace {

inline float H(uint16_t h) { return _cvtsh_ss(h); }

inline float HSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Software prefetch of the weights ~3 KiB ahead of use: measured on this VM's Xeon, it raises the
// streaming rate of a decode matrix-vector product by 20-40% (docs/PERFORMANCE.md); the hardware
// prefetcher alone leaves the loads latency-bound.
template <typename B>
inline void Prefetch(const B* p, size_t bytes) {
  constexpr size_t kAhead = 3072;
  const char* c = reinterpret_cast<const char*>(p) + kAhead;
  for (size_t off = 0; off < bytes; off += 64) _mm_prefetch(c + off, _MM_HINT_T0);
}

inline __m256i Load(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// 16 bytes of nibbles -> 32 bytes: low nibbles (elements 0..15) then high nibbles (16..31).
inline __m256i Nibbles32(const uint8_t* p) {
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i m = _mm_set1_epi8(0x0F);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m), _mm_and_si128(q, m));
}

// Byte j = 0xFF where bit j of x is set.
inline __m256i BitsToBytes(uint32_t x) {
  const __m256i spread = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
  const __m256i bit = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
  const __m256i v = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(x)), spread), bit);
  return _mm256_cmpeq_epi8(v, bit);
}

// Sum of products of signed codes w and activations y: 8 x i32 partial sums.
inline __m256i SumSigned(__m256i w, __m256i y) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(y, w)), _mm256_set1_epi16(1));
}
inline __m256i SumUnsigned(__m256i w, __m256i y) { return _mm256_madd_epi16(_mm256_maddubs_epi16(w, y), _mm256_set1_epi16(1)); }

// i16 pair sums times a scale per 16 elements (lanes 0..7: s0, 8..15: s1) -> 8 x i32.
inline __m256i Scaled16(__m256i p16, int s0, int s1) {
  return _mm256_madd_epi16(p16, _mm256_set_m128i(_mm_set1_epi16(static_cast<int16_t>(s1)), _mm_set1_epi16(static_cast<int16_t>(s0))));
}

inline int HSumI32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

// ---- F32 activations

float DotF32(const uint8_t* row, const uint8_t* act, int64_t n) {
  const auto* w = reinterpret_cast<const float*>(row);
  const auto* x = reinterpret_cast<const float*>(act);
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    Prefetch(w + i, 128);
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

inline __m256 Bf16x8(const uint16_t* p) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
}
inline __m256 F16x8(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }

template <bool kBf16>
float DotHalf(const uint8_t* row, const uint8_t* act, int64_t n) {
  const auto* w = reinterpret_cast<const uint16_t*>(row);
  const auto* x = reinterpret_cast<const float*>(act);
  auto load = [](const uint16_t* p) { return kBf16 ? Bf16x8(p) : F16x8(p); };
  __m256 a0 = _mm256_setzero_ps(), a1 = a0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    Prefetch(w + i, 32);
    a0 = _mm256_fmadd_ps(load(w + i), _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(load(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
  }
  float s = HSum(_mm256_add_ps(a0, a1));
  for (; i < n; ++i) s += (kBf16 ? Bf16ToFp32(w[i]) : Fp16ToFp32(w[i])) * x[i];
  return s;
}

// ---- 32-element blocks x Q8_0 / Q8_1

template <GgmlType T>
inline __m256i Codes32(const typename BlockOf<T>::type& b) {
  if constexpr (T == GgmlType::kQ8_0) {
    return Load(b.qs);
  } else if constexpr (T == GgmlType::kQ4_0) {
    return _mm256_sub_epi8(Nibbles32(b.qs), _mm256_set1_epi8(8));
  } else if constexpr (T == GgmlType::kQ4_1) {
    return Nibbles32(b.qs);
  } else if constexpr (T == GgmlType::kIQ4_NL) {
    const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(iq::kvalues_iq4nl)));
    return _mm256_shuffle_epi8(table, Nibbles32(b.qs));
  } else {
    uint32_t qh;
    std::memcpy(&qh, b.qh, 4);
    const __m256i hi = BitsToBytes(qh);
    if constexpr (T == GgmlType::kQ5_0) {
      return _mm256_or_si256(Nibbles32(b.qs), _mm256_andnot_si256(hi, _mm256_set1_epi8(static_cast<char>(0xF0))));
    } else {
      return _mm256_or_si256(Nibbles32(b.qs), _mm256_and_si256(hi, _mm256_set1_epi8(0x10)));
    }
  }
}

template <GgmlType T>
float Dot32(const uint8_t* row, const uint8_t* act, int64_t n) {
  const auto* w = reinterpret_cast<const typename BlockOf<T>::type*>(row);
  constexpr bool kAffine = T == GgmlType::kQ4_1 || T == GgmlType::kQ5_1;
  using Act = std::conditional_t<kAffine, BlockQ8_1, BlockQ8_0>;
  const auto* y = reinterpret_cast<const Act*>(act);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
  float offset = 0.0f;
  const int64_t nb = n / kQK;
  auto block = [&](int64_t i) {
    _mm_prefetch(reinterpret_cast<const char*>(w + i) + 8192, _MM_HINT_T0);
    const __m256i c = Codes32<T>(w[i]);
    const __m256i yq = Load(y[i].qs);
    const __m256i s = kAffine ? SumUnsigned(c, yq) : SumSigned(c, yq);
    if constexpr (kAffine) offset += H(w[i].m) * H(y[i].s);
    return _mm256_mul_ps(_mm256_set1_ps(H(w[i].d) * H(y[i].d)), _mm256_cvtepi32_ps(s));
  };
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    acc0 = _mm256_add_ps(acc0, block(i));
    acc1 = _mm256_add_ps(acc1, block(i + 1));
  }
  if (i < nb) acc0 = _mm256_add_ps(acc0, block(i));
  return HSum(_mm256_add_ps(acc0, acc1)) + offset;
}

// ---- 256-element super-blocks x Q8_K

// Sum over the 16 groups of sc[g] * bsums[g].
inline int ScaledBsums(const int* sc, const int16_t* bsums) {
  int s = 0;
  for (int g = 0; g < 16; ++g) s += sc[g] * bsums[g];
  return s;
}

float DotQ2_K(const uint8_t* row, const uint8_t* act, int64_t n) {
  const auto* w = reinterpret_cast<const BlockQ2_K*>(row);
  const auto* y = reinterpret_cast<const BlockQ8_K*>(act);
  const __m256i m3 = _mm256_set1_epi8(3);
  __m256 acc = _mm256_setzero_ps();
  float mins = 0.0f;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    Prefetch(w + i, sizeof(w[i]));
    int sc[16], mn[16];
    for (int g = 0; g < 16; ++g) sc[g] = w[i].scales[g] & 0xF, mn[g] = w[i].scales[g] >> 4;
    __m256i isum = _mm256_setzero_si256();
    for (int half = 0; half < 2; ++half) {
      const __m256i q = Load(w[i].qs + 32 * half);
      for (int j = 0; j < 4; ++j) {
        const __m256i c = _mm256_and_si256(_mm256_srli_epi16(q, 2 * j), m3);
        const __m256i p = _mm256_maddubs_epi16(c, Load(y[i].qs + 128 * half + 32 * j));
        isum = _mm256_add_epi32(isum, Scaled16(p, sc[8 * half + 2 * j], sc[8 * half + 2 * j + 1]));
      }
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * H(w[i].d)), _mm256_cvtepi32_ps(isum), acc);
    mins += (y[i].d * H(w[i].dmin)) * static_cast<float>(ScaledBsums(mn, y[i].bsums));
  }
  return HSum(acc) - mins;
}

float DotQ3_K(const uint8_t* row, const uint8_t* act, int64_t n) {
  const auto* w = reinterpret_cast<const BlockQ3_K*>(row);
  const auto* y = reinterpret_cast<const BlockQ8_K*>(act);
  const __m256i m3 = _mm256_set1_epi8(3), m1 = _mm256_set1_epi8(1);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    Prefetch(w + i, sizeof(w[i]));
    int8_t s8[16];
    Q3KScales(w[i].scales, s8);
    int sc[16];
    for (int g = 0; g < 16; ++g) sc[g] = s8[g] - 32;
    const __m256i hm = Load(w[i].hmask);
    __m256i isum = _mm256_setzero_si256();
    for (int half = 0; half < 2; ++half) {
      const __m256i q = Load(w[i].qs + 32 * half);
      for (int j = 0; j < 4; ++j) {
        const __m256i lo = _mm256_and_si256(_mm256_srli_epi16(q, 2 * j), m3);
        const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * half + j), m1);
        const __m256i c = _mm256_or_si256(lo, _mm256_slli_epi16(hb, 2));  // code + 4, in 0..7
        const __m256i p = _mm256_maddubs_epi16(c, Load(y[i].qs + 128 * half + 32 * j));
        isum = _mm256_add_epi32(isum, Scaled16(p, sc[8 * half + 2 * j], sc[8 * half + 2 * j + 1]));
      }
    }
    const int bias = 4 * ScaledBsums(sc, y[i].bsums);
    acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * H(w[i].d)),
                          _mm256_cvtepi32_ps(_mm256_sub_epi32(isum, _mm256_setr_epi32(bias, 0, 0, 0, 0, 0, 0, 0))), acc);
  }
  return HSum(acc);
}

template <bool kFive>
float DotQ45_K(const uint8_t* row, const uint8_t* act, int64_t n) {
  using B = std::conditional_t<kFive, BlockQ5_K, BlockQ4_K>;
  const auto* w = reinterpret_cast<const B*>(row);
  const auto* y = reinterpret_cast<const BlockQ8_K*>(act);
  const __m256i m4 = _mm256_set1_epi8(0x0F), m1 = _mm256_set1_epi8(1);
  __m256 acc = _mm256_setzero_ps();
  float mins = 0.0f;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    Prefetch(w + i, sizeof(w[i]));
    uint8_t sc[8], mn[8];
    for (int j = 0; j < 8; ++j) ScaleMinK4(j, w[i].scales, &sc[j], &mn[j]);
    __m256i hbits = _mm256_setzero_si256();
    if constexpr (kFive) hbits = Load(w[i].qh);
    __m256i isum = _mm256_setzero_si256();
    for (int ch = 0; ch < 4; ++ch) {
      const __m256i q = Load(w[i].qs + 32 * ch);
      __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
      if constexpr (kFive) {
        lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * ch), m1), 4));
        hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 2 * ch + 1), m1), 4));
      }
      const __m256i plo = _mm256_maddubs_epi16(lo, Load(y[i].qs + 64 * ch));
      const __m256i phi = _mm256_maddubs_epi16(hi, Load(y[i].qs + 64 * ch + 32));
      isum = _mm256_add_epi32(isum, _mm256_madd_epi16(plo, _mm256_set1_epi16(sc[2 * ch])));
      isum = _mm256_add_epi32(isum, _mm256_madd_epi16(phi, _mm256_set1_epi16(sc[2 * ch + 1])));
    }
    int msum = 0;
    for (int j = 0; j < 8; ++j) msum += mn[j] * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
    acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * H(w[i].d)), _mm256_cvtepi32_ps(isum), acc);
    mins += (y[i].d * H(w[i].dmin)) * static_cast<float>(msum);
  }
  return HSum(acc) - mins;
}

float DotQ6_K(const uint8_t* row, const uint8_t* act, int64_t n) {
  const auto* w = reinterpret_cast<const BlockQ6_K*>(row);
  const auto* y = reinterpret_cast<const BlockQ8_K*>(act);
  const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    Prefetch(w + i, sizeof(w[i]));
    const int8_t* s = w[i].scales;
    __m256i isum = _mm256_setzero_si256();
    for (int half = 0; half < 2; ++half) {
      const __m256i l0 = Load(w[i].ql + 64 * half), l1 = Load(w[i].ql + 64 * half + 32);
      const __m256i h = Load(w[i].qh + 32 * half);
      const __m256i c[4] = {
          _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(h, 4), m30)),
          _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(h, 2), m30)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(h, m30)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), _mm256_and_si256(_mm256_srli_epi16(h, 2), m30)),
      };
      for (int j = 0; j < 4; ++j) {
        const __m256i p = _mm256_maddubs_epi16(c[j], Load(y[i].qs + 128 * half + 32 * j));
        isum = _mm256_add_epi32(isum, Scaled16(p, s[8 * half + 2 * j], s[8 * half + 2 * j + 1]));
      }
    }
    int bias = 0;
    for (int g = 0; g < 16; ++g) bias += s[g] * y[i].bsums[g];
    acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * H(w[i].d)),
                          _mm256_cvtepi32_ps(_mm256_sub_epi32(isum, _mm256_setr_epi32(32 * bias, 0, 0, 0, 0, 0, 0, 0))), acc);
  }
  return HSum(acc);
}

float DotIQ4_XS(const uint8_t* row, const uint8_t* act, int64_t n) {
  const auto* w = reinterpret_cast<const BlockIQ4_XS*>(row);
  const auto* y = reinterpret_cast<const BlockQ8_K*>(act);
  const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(iq::kvalues_iq4nl)));
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    Prefetch(w + i, sizeof(w[i]));
    __m256i isum = _mm256_setzero_si256();
    for (int ib = 0; ib < 8; ++ib) {
      const int ls = ((w[i].scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF) | (((w[i].scales_h >> (2 * ib)) & 3) << 4);
      const __m256i c = _mm256_shuffle_epi8(table, Nibbles32(w[i].qs + 16 * ib));
      const __m256i yq = Load(y[i].qs + 32 * ib);
      const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(c, c), _mm256_sign_epi8(yq, c));
      isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, _mm256_set1_epi16(static_cast<int16_t>(ls - 32))));
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * H(w[i].d)), _mm256_cvtepi32_ps(isum), acc);
  }
  return HSum(acc);
}

}  // namespace

namespace internal {
void FillAvx2DotKernels(DotKernels* k) {
  using enum GgmlType;
  auto set = [k](GgmlType t, VecDotFn f) { k->dot[static_cast<uint32_t>(t)] = f; };
  set(kF32, DotF32);
  set(kF16, DotHalf<false>);
  set(kBF16, DotHalf<true>);
  set(kQ4_0, Dot32<kQ4_0>);
  set(kQ4_1, Dot32<kQ4_1>);
  set(kQ5_0, Dot32<kQ5_0>);
  set(kQ5_1, Dot32<kQ5_1>);
  set(kQ8_0, Dot32<kQ8_0>);
  set(kIQ4_NL, Dot32<kIQ4_NL>);
  set(kQ2_K, DotQ2_K);
  set(kQ3_K, DotQ3_K);
  set(kQ4_K, DotQ45_K<false>);
  set(kQ5_K, DotQ45_K<true>);
  set(kQ6_K, DotQ6_K);
  set(kIQ4_XS, DotIQ4_XS);
}
}  // namespace internal

}  // namespace lowbit

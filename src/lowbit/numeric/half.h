// Scalar fp16 / bf16 / fp8 <-> fp32 conversions: the reference every fast path is tested against.
//
// fp32 -> fp16 and fp32 -> bf16 round to nearest, ties to even; overflow goes to infinity;
// fp16 subnormals are produced and read exactly. NaN stays NaN with its sign, is made quiet, and
// keeps the top payload bits (as F16C's VCVTPS2PH does), so scalar and SIMD paths agree bit for bit.
#pragma once

#include <cstdint>
#include <cstring>

namespace lowbit {

inline uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float BitsFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline float Fp16ToFp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) return BitsFloat(sign | 0x7f800000u | (mant << 13) | (mant ? 0x400000u : 0));
  if (exp != 0) return BitsFloat(sign | ((exp + 112u) << 23) | (mant << 13));
  if (mant == 0) return BitsFloat(sign);
  uint32_t e = 113;  // subnormal: value = mant * 2^-24; normalize
  while ((mant & 0x400u) == 0) {
    mant <<= 1;
    --e;
  }
  return BitsFloat(sign | (e << 23) | ((mant & 0x3ffu) << 13));
}

inline uint16_t Fp32ToFp16(float f) {
  const uint32_t x = FloatBits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t a = x & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00u | ((a >> 13) & 0x3ffu);  // NaN, quieted
  if (a >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to infinity
  if (a >= 0x38800000u) {                        // normal half
    const uint32_t r = a - 0x38000000u;          // rebias exponent 127 -> 15
    uint32_t q = r >> 13;
    const uint32_t rem = r & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) ++q;
    return static_cast<uint16_t>(sign | q);
  }
  if (a < 0x33000000u) return sign;  // below 2^-25: rounds to zero (2^-25 itself ties to even 0)
  const uint32_t e = a >> 23;        // 102..112: subnormal half, unit 2^-24
  const uint32_t mant = (a & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126u - e;  // 14..24
  uint32_t q = mant >> shift;
  const uint32_t rem = mant & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1u);
  if (rem > half || (rem == half && (q & 1u))) ++q;
  return static_cast<uint16_t>(sign | q);
}

inline float Bf16ToFp32(uint16_t b) { return BitsFloat(static_cast<uint32_t>(b) << 16); }

inline uint16_t Fp32ToBf16(float f) {
  const uint32_t x = FloatBits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

// OCP FP8 E4M3 ("e4m3fn": no infinities, S.1111.111 is NaN, bias 7) and E5M2 (IEEE-like, bias 15).
inline float Fp8E4M3ToFp32(uint8_t v) {
  const uint32_t sign = static_cast<uint32_t>(v & 0x80u) << 24;
  const uint32_t exp = (v >> 3) & 0xfu;
  const uint32_t mant = v & 0x7u;
  if (exp == 0xf && mant == 0x7) return BitsFloat(sign | 0x7fc00000u);
  if (exp == 0) {  // subnormal: mant * 2^-9
    float m = static_cast<float>(mant) * (1.0f / 512.0f);
    return sign ? -m : m;
  }
  return BitsFloat(sign | ((exp + 120u) << 23) | (mant << 20));
}

inline float Fp8E5M2ToFp32(uint8_t v) { return Fp16ToFp32(static_cast<uint16_t>(v) << 8); }

}  // namespace lowbit

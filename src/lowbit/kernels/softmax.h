// The attention softmax's arithmetic (and the FFN's SiLU, which uses the same exp), shared by the
// reference kernels (dot.cc) and the SIMD ones (dot_x86.inc), which repeat it lane for lane so that
// both round alike.
//
// exp is computed here rather than by std::exp so that the SIMD kernels can compute the same value 8
// at a time: x = n ln2 + r with n = round(x log2 e) (round-to-nearest-even by the 1.5 * 2^23 trick)
// and ln2 split in two (Cody-Waite), exp(r) by Cephes' degree-7 expf polynomial on |r| <= ln2 / 2
// (within about 1 ulp of the exact value), then scaled by 2^n through the exponent bits. Inputs
// below -87 are taken as -87 (exp(-87) = 1.6e-38, the smallest with a normal 2^n): the softmax only
// exponentiates s - max <= 0, and what it loses there is below float's resolution of the sum.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace lowbit::softmax {

inline constexpr float kMinArg = -87.0f;
inline constexpr float kLog2e = 1.44269504088896341f;
inline constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: (v + kRound) - kRound rounds v to an integer
inline constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
inline constexpr float kP[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                                4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};

// exp(x) for x <= 0 (NaN and -inf give exp(-87)), in the order of operations every kernel uses (no
// FMA). Positive x is outside its contract: 2^n would leave the exponent range from x = 88.
inline float Exp(float x) {
  x = x > kMinArg ? x : kMinArg;  // as _mm256_max_ps(x, kMinArg), NaN included
  const float n = (x * kLog2e + kRound) - kRound;
  const float r = (x - n * kLn2Hi) - n * kLn2Lo;
  float p = kP[0];
  for (int j = 1; j < 6; ++j) p = p * r + kP[j];
  const float e = (p * (r * r) + r) + 1.0f;
  return e * std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
}

// SiLU(g) = g * sigmoid(g), with e = Exp(-|g|) so that exp stays inside its contract (and never
// overflows): g / (1 + e) for g >= 0, (g * e) / (1 + e) below, the two forms of g / (1 + exp(-g)).
// NaN stays NaN. The SwiGLU kernels (SwiGluFn, kernels/dot.h) compute it lane for lane.
inline float Silu(float g) {
  const float e = Exp(-std::fabs(g));
  const float num = g >= 0.0f ? g : g * e;
  return num / (1.0f + e);
}

// GELU, tanh form (gelu_pytorch_tanh, ggml_gelu): 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3),
// written as x * sigmoid(2u) with the sigmoid computed as Silu's (e = Exp(-|2u|)), so that exp stays
// inside its contract. The GeGLU kernels compute it.
inline float GeluTanh(float x) {
  constexpr float kTwoSqrt2OverPi = 1.5957691216057308f;  // 2 sqrt(2 / pi)
  const float z = kTwoSqrt2OverPi * x * (1.0f + 0.044715f * x * x);
  const float e = Exp(-std::fabs(z));
  const float num = z >= 0.0f ? x : x * e;
  return num / (1.0f + e);
}

// Dot's combination of 8 partial sums (kernels/matvec.h): Dot, the attention scores and the
// softmax sum all end with it.
inline float Combine8(const float* s) { return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7])); }

}  // namespace lowbit::softmax

// The activation side of integer dot products: a row of floats quantized once per product into the
// partner type of the weights (Q8_0, Q8_1 or Q8_K), with ggml's reference rounding so the bytes
// equal ggml's (checked against ../shared/golden/quant-golden.gguf in tests/quant/rtn_test.cc).
#pragma once

#include <cmath>
#include <cstdint>

namespace lowbit {

// Each converts `n` floats (a multiple of the block size) into blocks at `dst`.
void QuantizeQ8_0Ref(const float* x, void* dst, int64_t n);
void QuantizeQ8_1Ref(const float* x, void* dst, int64_t n);
void QuantizeQ8_KRef(const float* x, void* dst, int64_t n);

// ggml's nearest_int: round half to even via the float adder (|v| <= 2^22).
inline int NearestInt(float v) {
  const float t = v + 12582912.0f;
  int32_t i;
  __builtin_memcpy(&i, &t, 4);
  return (i & 0x007fffff) - 0x00400000;
}

// (int32_t)v as x86's cvttss2si computes it: toward zero, and INT32_MIN for NaN and for values
// outside int32, where a C++ cast is undefined. ggml's reference quantizers cast floats straight to
// int8_t / uint8_t, which compilers emit as this conversion and a truncation to 8 bits:
// static_cast<int8_t>(TruncToInt32(v)) keeps their codes bit for bit and is defined for NaN or
// infinite input (a file's garbage block, a NaN activation).
inline int32_t TruncToInt32(float v) { return v > -2147483904.0f && v < 2147483648.0f ? static_cast<int32_t>(v) : INT32_MIN; }

// Signed value of largest magnitude in x[0..n) (first one wins ties); its magnitude in *amax_out.
inline float SignedAbsMax(const float* x, int n, float* amax_out) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  *amax_out = amax;
  return max;
}

}  // namespace lowbit

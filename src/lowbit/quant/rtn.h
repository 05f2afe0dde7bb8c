// Round-to-nearest reference quantizers whose output the formats define: ggml's reference bytes
// for Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 (weights) and Q8_0, Q8_1, Q8_K (the activation side of dot
// products). Checked byte for byte against ../shared/golden/quant-golden.gguf.
#pragma once

#include <cstdint>

namespace lowbit {

// Each converts `n` floats (a multiple of the block size) into blocks at `dst`.
void QuantizeQ4_0Ref(const float* x, void* dst, int64_t n);
void QuantizeQ4_1Ref(const float* x, void* dst, int64_t n);
void QuantizeQ5_0Ref(const float* x, void* dst, int64_t n);
void QuantizeQ5_1Ref(const float* x, void* dst, int64_t n);
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

}  // namespace lowbit

// Array conversions between fp32 and fp16/bf16, dispatched once per ISA.
//
// Every ISA's table gives results bit-identical to the scalar functions in half.h (tests check
// this for every table the running CPU supports). Tables: ref (scalar), avx2 (F16C for fp16,
// integer AVX2 for bf16), avx512 (AVX-512F). AVX-512-BF16's VCVTNEPS2BF16 is deliberately not
// used: it flushes subnormal inputs to zero, which would break bit-exactness with the reference.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lowbit/base/cpu_features.h"

namespace lowbit {

struct HalfConvertKernels {
  void (*f16_to_f32)(const uint16_t* src, float* dst, size_t n);
  void (*f32_to_f16)(const float* src, uint16_t* dst, size_t n);
  void (*bf16_to_f32)(const uint16_t* src, float* dst, size_t n);
  void (*f32_to_bf16)(const float* src, uint16_t* dst, size_t n);
};

// The table for one ISA (must be supported by the CPU to be called).
const HalfConvertKernels& HalfConvertKernelsFor(Isa isa);
// The table for ActiveIsa(), chosen on first use.
const HalfConvertKernels& HalfConvert();

inline void ConvertF16ToF32(const uint16_t* s, float* d, size_t n) { HalfConvert().f16_to_f32(s, d, n); }
inline void ConvertF32ToF16(const float* s, uint16_t* d, size_t n) { HalfConvert().f32_to_f16(s, d, n); }
inline void ConvertBf16ToF32(const uint16_t* s, float* d, size_t n) { HalfConvert().bf16_to_f32(s, d, n); }
inline void ConvertF32ToBf16(const float* s, uint16_t* d, size_t n) { HalfConvert().f32_to_bf16(s, d, n); }

namespace internal {
extern const HalfConvertKernels kHalfConvertRef;
extern const HalfConvertKernels kHalfConvertAvx2;
extern const HalfConvertKernels kHalfConvertAvx512;
}  // namespace internal

}  // namespace lowbit

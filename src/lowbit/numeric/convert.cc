#include "lowbit/numeric/convert.h"

#include "lowbit/numeric/half.h"

namespace lowbit {
namespace {

void F16ToF32Ref(const uint16_t* s, float* d, size_t n) {
  for (size_t i = 0; i < n; ++i) d[i] = Fp16ToFp32(s[i]);
}
void F32ToF16Ref(const float* s, uint16_t* d, size_t n) {
  for (size_t i = 0; i < n; ++i) d[i] = Fp32ToFp16(s[i]);
}
void Bf16ToF32Ref(const uint16_t* s, float* d, size_t n) {
  for (size_t i = 0; i < n; ++i) d[i] = Bf16ToFp32(s[i]);
}
void F32ToBf16Ref(const float* s, uint16_t* d, size_t n) {
  for (size_t i = 0; i < n; ++i) d[i] = Fp32ToBf16(s[i]);
}

}  // namespace

namespace internal {
const HalfConvertKernels kHalfConvertRef = {F16ToF32Ref, F32ToF16Ref, Bf16ToF32Ref, F32ToBf16Ref};
}  // namespace internal

const HalfConvertKernels& HalfConvertKernelsFor(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return internal::kHalfConvertAvx512;
    case Isa::kAvx2: return internal::kHalfConvertAvx2;
    case Isa::kRef: break;
  }
  return internal::kHalfConvertRef;
}

const HalfConvertKernels& HalfConvert() {
  static const HalfConvertKernels& table = HalfConvertKernelsFor(ActiveIsa());
  return table;
}

}  // namespace lowbit

#include "lowbit/kernels/act_quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "lowbit/numeric/blocks.h"
#include "lowbit/numeric/half.h"

namespace lowbit {

namespace {

// One block of 32: d = amax / 127 stored as fp16, codes round(x / d) (ggml's reference rounding).
// Returns d before fp16 rounding (Q8_1's s uses it).
inline float QuantizeBlock8(const float* x, uint16_t* d_out, int8_t* qs) {
  float amax;
  SignedAbsMax(x, kQK, &amax);
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  *d_out = Fp32ToFp16(d);
  for (int j = 0; j < kQK; ++j) qs[j] = static_cast<int8_t>(TruncToInt32(std::round(x[j] * id)));
  return d;
}

}  // namespace

void QuantizeQ8_0Ref(const float* x, void* dst, int64_t n) {
  auto* b = static_cast<BlockQ8_0*>(dst);
  for (; n > 0; n -= kQK, x += kQK, ++b) QuantizeBlock8(x, &b->d, b->qs);
}

void QuantizeQ8_1Ref(const float* x, void* dst, int64_t n) {
  auto* b = static_cast<BlockQ8_1*>(dst);
  for (; n > 0; n -= kQK, x += kQK, ++b) {
    const float d = QuantizeBlock8(x, &b->d, b->qs);
    int sum = 0;
    for (int j = 0; j < kQK; ++j) sum += b->qs[j];
    b->s = Fp32ToFp16(static_cast<float>(sum) * d);
  }
}

void QuantizeQ8_KRef(const float* x, void* dst, int64_t n) {
  auto* b = static_cast<BlockQ8_K*>(dst);
  for (; n > 0; n -= kQK_K, x += kQK_K, ++b) {
    float amax;
    const float max = SignedAbsMax(x, kQK_K, &amax);
    if (amax == 0.0f) {
      std::memset(b, 0, sizeof(*b));
      continue;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < kQK_K; ++j) b->qs[j] = static_cast<int8_t>(std::min(127, NearestInt(iscale * x[j])));
    for (int j = 0; j < kQK_K / 16; ++j) {
      int sum = 0;
      for (int i = 0; i < 16; ++i) sum += b->qs[j * 16 + i];
      b->bsums[j] = static_cast<int16_t>(sum);
    }
    b->d = 1.0f / iscale;
  }
}

}  // namespace lowbit

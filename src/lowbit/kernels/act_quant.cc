#include "lowbit/kernels/act_quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "lowbit/numeric/blocks.h"
#include "lowbit/numeric/half.h"

namespace lowbit {

void QuantizeQ8_0Ref(const float* x, void* dst, int64_t n) {
  auto* b = static_cast<BlockQ8_0*>(dst);
  for (; n > 0; n -= kQK, x += kQK, ++b) {
    float amax;
    SignedAbsMax(x, kQK, &amax);
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b->d = Fp32ToFp16(d);
    for (int j = 0; j < kQK; ++j) b->qs[j] = static_cast<int8_t>(std::round(x[j] * id));
  }
}

void QuantizeQ8_1Ref(const float* x, void* dst, int64_t n) {
  auto* b = static_cast<BlockQ8_1*>(dst);
  for (; n > 0; n -= kQK, x += kQK, ++b) {
    float amax;
    SignedAbsMax(x, kQK, &amax);
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b->d = Fp32ToFp16(d);
    int sum = 0;
    for (int j = 0; j < 16; ++j) {
      b->qs[j] = static_cast<int8_t>(std::round(x[j] * id));
      b->qs[j + 16] = static_cast<int8_t>(std::round(x[j + 16] * id));
      sum += b->qs[j] + b->qs[j + 16];
    }
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

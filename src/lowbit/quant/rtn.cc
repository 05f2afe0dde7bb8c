#include "lowbit/quant/rtn.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "lowbit/numeric/blocks.h"
#include "lowbit/numeric/half.h"

namespace lowbit {
namespace {

inline void MinMax(const float* x, int n, float* mn, float* mx) {
  float lo = FLT_MAX, hi = -FLT_MAX;
  for (int j = 0; j < n; ++j) {
    lo = std::min(lo, x[j]);
    hi = std::max(hi, x[j]);
  }
  *mn = lo;
  *mx = hi;
}

// Q5 packing: low nibbles into qs (element j low, j+16 high), 5th bits into the u32 qh.
inline void PackQ5(const int* q, uint8_t* qs, uint8_t* qh_out) {
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    qs[j] = static_cast<uint8_t>((q[j] & 0x0F) | ((q[j + 16] & 0x0F) << 4));
    qh |= ((static_cast<uint32_t>(q[j]) & 0x10u) >> 4) << j;
    qh |= ((static_cast<uint32_t>(q[j + 16]) & 0x10u) >> 4) << (j + 16);
  }
  std::memcpy(qh_out, &qh, 4);
}

// Symmetric block scale d = (signed largest value) / divisor, stored as fp16; returns 1/d (0 if d is 0).
inline float SymmetricScale(const float* x, float divisor, uint16_t* d_out) {
  float amax;
  const float d = SignedAbsMax(x, kQK, &amax) / divisor;
  *d_out = Fp32ToFp16(d);
  return d != 0.0f ? 1.0f / d : 0.0f;
}

// Affine block scale d = (max - min) / levels and offset min, stored as fp16; returns 1/d.
inline float AffineScale(const float* x, float levels, uint16_t* d_out, uint16_t* m_out, float* mn) {
  float mx;
  MinMax(x, kQK, mn, &mx);
  const float d = (mx - *mn) / levels;
  *d_out = Fp32ToFp16(d);
  *m_out = Fp32ToFp16(*mn);
  return d != 0.0f ? 1.0f / d : 0.0f;
}

}  // namespace

void QuantizeQ4_0Ref(const float* x, void* dst, int64_t n) {
  auto* b = static_cast<BlockQ4_0*>(dst);
  for (; n > 0; n -= kQK, x += kQK, ++b) {
    const float id = SymmetricScale(x, -8.0f, &b->d);
    for (int j = 0; j < 16; ++j) {
      const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>(TruncToInt32(x[j] * id + 8.5f))));
      const int q1 = std::min(15, static_cast<int>(static_cast<int8_t>(TruncToInt32(x[j + 16] * id + 8.5f))));
      b->qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void QuantizeQ4_1Ref(const float* x, void* dst, int64_t n) {
  auto* b = static_cast<BlockQ4_1*>(dst);
  for (; n > 0; n -= kQK, x += kQK, ++b) {
    float mn;
    const float id = AffineScale(x, 15.0f, &b->d, &b->m, &mn);
    for (int j = 0; j < 16; ++j) {
      const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>(TruncToInt32((x[j] - mn) * id + 0.5f))));
      const int q1 = std::min(15, static_cast<int>(static_cast<int8_t>(TruncToInt32((x[j + 16] - mn) * id + 0.5f))));
      b->qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void QuantizeQ5_0Ref(const float* x, void* dst, int64_t n) {
  auto* b = static_cast<BlockQ5_0*>(dst);
  for (; n > 0; n -= kQK, x += kQK, ++b) {
    const float id = SymmetricScale(x, -16.0f, &b->d);
    int q[kQK];
    for (int j = 0; j < kQK; ++j) q[j] = std::min(31, static_cast<int>(static_cast<int8_t>(TruncToInt32(x[j] * id + 16.5f))));
    PackQ5(q, b->qs, b->qh);
  }
}

void QuantizeQ5_1Ref(const float* x, void* dst, int64_t n) {
  auto* b = static_cast<BlockQ5_1*>(dst);
  for (; n > 0; n -= kQK, x += kQK, ++b) {
    float mn;
    const float id = AffineScale(x, 31.0f, &b->d, &b->m, &mn);
    int q[kQK];
    for (int j = 0; j < kQK; ++j) q[j] = static_cast<uint8_t>(TruncToInt32((x[j] - mn) * id + 0.5f));
    PackQ5(q, b->qs, b->qh);
  }
}

}  // namespace lowbit

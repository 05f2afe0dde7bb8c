#include "lowbit/quant/given_scale.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "lowbit/kernels/act_quant.h"
#include "lowbit/numeric/blocks.h"
#include "lowbit/numeric/half.h"
#include "lowbit/numeric/iq_tables.h"

namespace lowbit {
namespace {

// The block's scale as stored (fp16) and its inverse (0 for a zero scale: every code is the zero level).
inline float Scale(float d, uint16_t* out) {
  *out = Fp32ToFp16(d);
  const float d16 = Fp16ToFp32(*out);
  return d16 != 0.0f && std::isfinite(d16) ? 1.0f / d16 : 0.0f;
}

inline int Level(float v, int lo, int hi) { return std::clamp(NearestInt(std::clamp(v, -1e6f, 1e6f)), lo, hi); }

}  // namespace

void QuantizeQ4_0WithScales(const float* x, const float* d, void* dst, int64_t n) {
  auto* b = static_cast<BlockQ4_0*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    const float id = Scale(d[i], &b[i].d);
    for (int j = 0; j < 16; ++j) {
      const int q0 = Level(x[j] * id, -8, 7) + 8, q1 = Level(x[j + 16] * id, -8, 7) + 8;
      b[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void QuantizeQ5_0WithScales(const float* x, const float* d, void* dst, int64_t n) {
  auto* b = static_cast<BlockQ5_0*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    const float id = Scale(d[i], &b[i].d);
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      const int q0 = Level(x[j] * id, -16, 15) + 16, q1 = Level(x[j + 16] * id, -16, 15) + 16;
      b[i].qs[j] = static_cast<uint8_t>((q0 & 0xF) | ((q1 & 0xF) << 4));
      qh |= static_cast<uint32_t>(q0 >> 4) << j;
      qh |= static_cast<uint32_t>(q1 >> 4) << (j + 16);
    }
    std::memcpy(b[i].qh, &qh, 4);
  }
}

void QuantizeQ8_0WithScales(const float* x, const float* d, void* dst, int64_t n) {
  auto* b = static_cast<BlockQ8_0*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    const float id = Scale(d[i], &b[i].d);
    for (int j = 0; j < kQK; ++j) b[i].qs[j] = static_cast<int8_t>(Level(x[j] * id, -127, 127));
  }
}

void QuantizeIQ4_NLWithScales(const float* x, const float* d, void* dst, int64_t n) {
  auto* b = static_cast<BlockIQ4_NL*>(dst);
  const int8_t* kv = iq::kvalues_iq4nl;
  auto nearest = [kv](float v) {
    int best = 0;
    for (int c = 1; c < 16; ++c) {
      if (std::fabs(v - kv[c]) < std::fabs(v - kv[best])) best = c;
    }
    return best;
  };
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    const float id = Scale(d[i], &b[i].d);
    for (int j = 0; j < 16; ++j) {
      b[i].qs[j] = static_cast<uint8_t>(nearest(x[j] * id) | (nearest(x[j + 16] * id) << 4));
    }
  }
}

}  // namespace lowbit

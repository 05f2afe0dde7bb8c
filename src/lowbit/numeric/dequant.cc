#include "lowbit/numeric/dequant.h"

#include <cstring>

#include "lowbit/numeric/blocks.h"
#include "lowbit/numeric/bnb.h"
#include "lowbit/numeric/convert.h"
#include "lowbit/numeric/half.h"
#include "lowbit/numeric/iq_tables.h"

namespace lowbit {
namespace {

using iq::kmask_iq2xs;
using iq::ksigns_iq2xs;

inline float H(uint16_t h) { return Fp16ToFp32(h); }

template <typename B>
const B* Blocks(const void* src) {
  return static_cast<const B*>(src);
}

void F32(const void* s, float* y, int64_t n) { std::memcpy(y, s, static_cast<size_t>(n) * 4); }
void F16(const void* s, float* y, int64_t n) { ConvertF16ToF32(static_cast<const uint16_t*>(s), y, n); }
void BF16(const void* s, float* y, int64_t n) { ConvertBf16ToF32(static_cast<const uint16_t*>(s), y, n); }

void Q4_0(const void* s, float* y, int64_t n) {
  for (const BlockQ4_0* b = Blocks<BlockQ4_0>(s); n > 0; n -= kQK, ++b, y += kQK) {
    const float d = H(b->d);
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>((b->qs[j] & 0x0F) - 8) * d;
      y[j + 16] = static_cast<float>((b->qs[j] >> 4) - 8) * d;
    }
  }
}

void Q4_1(const void* s, float* y, int64_t n) {
  for (const BlockQ4_1* b = Blocks<BlockQ4_1>(s); n > 0; n -= kQK, ++b, y += kQK) {
    const float d = H(b->d), m = H(b->m);
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>(b->qs[j] & 0x0F) * d + m;
      y[j + 16] = static_cast<float>(b->qs[j] >> 4) * d + m;
    }
  }
}

void Q5_0(const void* s, float* y, int64_t n) {
  for (const BlockQ5_0* b = Blocks<BlockQ5_0>(s); n > 0; n -= kQK, ++b, y += kQK) {
    const float d = H(b->d);
    uint32_t qh;
    std::memcpy(&qh, b->qh, 4);
    for (int j = 0; j < 16; ++j) {
      const uint8_t h0 = static_cast<uint8_t>(((qh >> j) << 4) & 0x10);
      const uint8_t h1 = static_cast<uint8_t>((qh >> (j + 12)) & 0x10);
      y[j] = static_cast<float>(((b->qs[j] & 0x0F) | h0) - 16) * d;
      y[j + 16] = static_cast<float>(((b->qs[j] >> 4) | h1) - 16) * d;
    }
  }
}

void Q5_1(const void* s, float* y, int64_t n) {
  for (const BlockQ5_1* b = Blocks<BlockQ5_1>(s); n > 0; n -= kQK, ++b, y += kQK) {
    const float d = H(b->d), m = H(b->m);
    uint32_t qh;
    std::memcpy(&qh, b->qh, 4);
    for (int j = 0; j < 16; ++j) {
      const uint8_t h0 = static_cast<uint8_t>(((qh >> j) << 4) & 0x10);
      const uint8_t h1 = static_cast<uint8_t>((qh >> (j + 12)) & 0x10);
      y[j] = static_cast<float>((b->qs[j] & 0x0F) | h0) * d + m;
      y[j + 16] = static_cast<float>((b->qs[j] >> 4) | h1) * d + m;
    }
  }
}

void Q8_0(const void* s, float* y, int64_t n) {
  for (const BlockQ8_0* b = Blocks<BlockQ8_0>(s); n > 0; n -= kQK, ++b, y += kQK) {
    const float d = H(b->d);
    for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(b->qs[j]) * d;
  }
}

void Q2_K(const void* s, float* y, int64_t n) {
  for (const BlockQ2_K* b = Blocks<BlockQ2_K>(s); n > 0; n -= kQK_K, ++b) {
    const float d = H(b->d), dmin = H(b->dmin);
    const uint8_t* q = b->qs;
    int is = 0;
    for (int half = 0; half < 2; ++half, q += 32) {
      for (int shift = 0; shift < 8; shift += 2) {
        for (int part = 0; part < 2; ++part) {
          const uint8_t sc = b->scales[is++];
          const float dl = d * static_cast<float>(sc & 0xF), ml = dmin * static_cast<float>(sc >> 4);
          for (int l = 0; l < 16; ++l) *y++ = dl * static_cast<float>((q[l + 16 * part] >> shift) & 3) - ml;
        }
      }
    }
  }
}

void Q3_K(const void* s, float* y, int64_t n) {
  for (const BlockQ3_K* b = Blocks<BlockQ3_K>(s); n > 0; n -= kQK_K, ++b) {
    const float d = H(b->d);
    int8_t scales[16];
    Q3KScales(b->scales, scales);
    const uint8_t* q = b->qs;
    uint8_t m = 1;
    int is = 0;
    for (int half = 0; half < 2; ++half, q += 32) {
      for (int shift = 0; shift < 8; shift += 2, m = static_cast<uint8_t>(m << 1)) {
        for (int part = 0; part < 2; ++part) {
          const float dl = d * static_cast<float>(scales[is++] - 32);
          for (int l = 0; l < 16; ++l) {
            const int lq = (q[l + 16 * part] >> shift) & 3;
            *y++ = dl * static_cast<float>(lq - ((b->hmask[l + 16 * part] & m) ? 0 : 4));
          }
        }
      }
    }
  }
}

void Q4_K(const void* s, float* y, int64_t n) {
  for (const BlockQ4_K* b = Blocks<BlockQ4_K>(s); n > 0; n -= kQK_K, ++b) {
    const float d = H(b->d), dmin = H(b->dmin);
    const uint8_t* q = b->qs;
    for (int is = 0; is < 8; is += 2, q += 32) {
      uint8_t sc, m;
      ScaleMinK4(is, b->scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      ScaleMinK4(is + 1, b->scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
    }
  }
}

void Q5_K(const void* s, float* y, int64_t n) {
  for (const BlockQ5_K* b = Blocks<BlockQ5_K>(s); n > 0; n -= kQK_K, ++b) {
    const float d = H(b->d), dmin = H(b->dmin);
    const uint8_t* ql = b->qs;
    uint8_t u1 = 1, u2 = 2;
    for (int is = 0; is < 8; is += 2, ql += 32) {
      uint8_t sc, m;
      ScaleMinK4(is, b->scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      ScaleMinK4(is + 1, b->scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>((ql[l] & 0xF) + (b->qh[l] & u1 ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>((ql[l] >> 4) + (b->qh[l] & u2 ? 16 : 0)) - m2;
      u1 = static_cast<uint8_t>(u1 << 2);
      u2 = static_cast<uint8_t>(u2 << 2);
    }
  }
}

void Q6_K(const void* s, float* y, int64_t n) {
  for (const BlockQ6_K* b = Blocks<BlockQ6_K>(s); n > 0; n -= kQK_K, ++b) {
    const float d = H(b->d);
    const uint8_t* ql = b->ql;
    const uint8_t* qh = b->qh;
    const int8_t* sc = b->scales;
    for (int half = 0; half < 2; ++half, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = static_cast<int8_t>((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = static_cast<int8_t>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = static_cast<int8_t>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = static_cast<int8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
        y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
        y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
        y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
      }
    }
  }
}

void IQ4_NL(const void* s, float* y, int64_t n) {
  for (const BlockIQ4_NL* b = Blocks<BlockIQ4_NL>(s); n > 0; n -= kQK, ++b, y += kQK) {
    const float d = H(b->d);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>(iq::kvalues_iq4nl[b->qs[j] & 0xF]);
      y[j + 16] = d * static_cast<float>(iq::kvalues_iq4nl[b->qs[j] >> 4]);
    }
  }
}

void IQ4_XS(const void* s, float* y, int64_t n) {
  for (const BlockIQ4_XS* b = Blocks<BlockIQ4_XS>(s); n > 0; n -= kQK_K, ++b) {
    const float d = H(b->d);
    const uint8_t* qs = b->qs;
    for (int ib = 0; ib < 8; ++ib, qs += 16, y += 32) {
      const float dl = d * static_cast<float>(IQ4XSScale(*b, ib));
      for (int j = 0; j < 16; ++j) {
        y[j] = dl * static_cast<float>(iq::kvalues_iq4nl[qs[j] & 0xF]);
        y[j + 16] = dl * static_cast<float>(iq::kvalues_iq4nl[qs[j] >> 4]);
      }
    }
  }
}

inline float Ternary(uint8_t q, uint8_t pow3) {
  const uint8_t v = static_cast<uint8_t>(q * pow3);  // wraps mod 256, as in ggml
  const int xi = (static_cast<uint16_t>(v) * 3) >> 8;
  return static_cast<float>(xi - 1);
}

void TQ1_0(const void* s, float* y, int64_t n) {
  static const uint8_t kPow3[6] = {1, 3, 9, 27, 81, 243};
  for (const BlockTQ1_0* b = Blocks<BlockTQ1_0>(s); n > 0; n -= kQK_K, ++b) {
    const float d = H(b->d);
    for (int p = 0; p < 5; ++p)
      for (int m = 0; m < 32; ++m) *y++ = Ternary(b->qs[m], kPow3[p]) * d;
    for (int p = 0; p < 5; ++p)
      for (int m = 0; m < 16; ++m) *y++ = Ternary(b->qs[32 + m], kPow3[p]) * d;
    for (int p = 0; p < 4; ++p)
      for (int j = 0; j < 4; ++j) *y++ = Ternary(b->qh[j], kPow3[p]) * d;
  }
}

void TQ2_0(const void* s, float* y, int64_t n) {
  for (const BlockTQ2_0* b = Blocks<BlockTQ2_0>(s); n > 0; n -= kQK_K, ++b) {
    const float d = H(b->d);
    for (int j = 0; j < 64; j += 32)
      for (int l = 0; l < 4; ++l)
        for (int m = 0; m < 32; ++m) *y++ = static_cast<float>(((b->qs[j + m] >> (l * 2)) & 3) - 1) * d;
  }
}

inline const uint8_t* GridBytes(const uint64_t* grid, int index) {
  return reinterpret_cast<const uint8_t*>(grid + index);
}
inline float Sign(uint8_t signs, int j) { return signs & kmask_iq2xs[j] ? -1.f : 1.f; }

void IQ2_XXS(const void* s, float* y, int64_t n) {
  for (const BlockIQ2_XXS* b = Blocks<BlockIQ2_XXS>(s); n > 0; n -= kQK_K, ++b) {
    const float d = H(b->d);
    for (int ib = 0; ib < 8; ++ib) {
      uint32_t aux[2];
      std::memcpy(aux, b->qs + 4 * ib, 8);
      const auto* idx = reinterpret_cast<const uint8_t*>(aux);
      const float db = d * (0.5f + static_cast<float>(aux[1] >> 28)) * 0.25f;
      for (int l = 0; l < 4; ++l, y += 8) {
        const uint8_t* grid = GridBytes(iq::iq2xxs_grid, idx[l]);
        const uint8_t signs = ksigns_iq2xs[(aux[1] >> 7 * l) & 127];
        for (int j = 0; j < 8; ++j) y[j] = db * static_cast<float>(grid[j]) * Sign(signs, j);
      }
    }
  }
}

void IQ2_XS(const void* s, float* y, int64_t n) {
  for (const BlockIQ2_XS* b = Blocks<BlockIQ2_XS>(s); n > 0; n -= kQK_K, ++b) {
    const float d = H(b->d);
    for (int ib = 0; ib < 8; ++ib) {
      const float db[2] = {d * (0.5f + static_cast<float>(b->scales[ib] & 0xF)) * 0.25f,
                           d * (0.5f + static_cast<float>(b->scales[ib] >> 4)) * 0.25f};
      for (int l = 0; l < 4; ++l, y += 8) {
        const uint16_t q = b->qs[4 * ib + l];
        const uint8_t* grid = GridBytes(iq::iq2xs_grid, q & 511);
        const uint8_t signs = ksigns_iq2xs[q >> 9];
        for (int j = 0; j < 8; ++j) y[j] = db[l / 2] * static_cast<float>(grid[j]) * Sign(signs, j);
      }
    }
  }
}

void IQ2_S(const void* s, float* y, int64_t n) {
  for (const BlockIQ2_S* b = Blocks<BlockIQ2_S>(s); n > 0; n -= kQK_K, ++b) {
    const float d = H(b->d);
    const uint8_t* qs = b->qs;
    const uint8_t* signs = b->qs + 32;
    for (int ib = 0; ib < 8; ++ib, qs += 4, signs += 4) {
      const float db[2] = {d * (0.5f + static_cast<float>(b->scales[ib] & 0xF)) * 0.25f,
                           d * (0.5f + static_cast<float>(b->scales[ib] >> 4)) * 0.25f};
      for (int l = 0; l < 4; ++l, y += 8) {
        const float dl = db[l / 2];
        const uint8_t* grid = GridBytes(iq::iq2s_grid, qs[l] | ((b->qh[ib] << (8 - 2 * l)) & 0x300));
        for (int j = 0; j < 8; ++j) y[j] = dl * static_cast<float>(grid[j]) * Sign(signs[l], j);
      }
    }
  }
}

void IQ3_XXS(const void* s, float* y, int64_t n) {
  for (const BlockIQ3_XXS* b = Blocks<BlockIQ3_XXS>(s); n > 0; n -= kQK_K, ++b) {
    const float d = H(b->d);
    const uint8_t* qs = b->qs;
    const uint8_t* scales_and_signs = b->qs + kQK_K / 4;
    for (int ib = 0; ib < 8; ++ib, qs += 8) {
      uint32_t aux;
      std::memcpy(&aux, scales_and_signs + 4 * ib, 4);
      const float db = d * (0.5f + static_cast<float>(aux >> 28)) * 0.5f;
      for (int l = 0; l < 4; ++l, y += 8) {
        const uint8_t signs = ksigns_iq2xs[(aux >> 7 * l) & 127];
        const auto* g1 = reinterpret_cast<const uint8_t*>(iq::iq3xxs_grid + qs[2 * l]);
        const auto* g2 = reinterpret_cast<const uint8_t*>(iq::iq3xxs_grid + qs[2 * l + 1]);
        for (int j = 0; j < 4; ++j) {
          y[j] = db * static_cast<float>(g1[j]) * Sign(signs, j);
          y[j + 4] = db * static_cast<float>(g2[j]) * Sign(signs, j + 4);
        }
      }
    }
  }
}

void IQ3_S(const void* s, float* y, int64_t n) {
  for (const BlockIQ3_S* b = Blocks<BlockIQ3_S>(s); n > 0; n -= kQK_K, ++b) {
    const float d = H(b->d);
    const uint8_t* qs = b->qs;
    const uint8_t* qh = b->qh;
    const uint8_t* signs = b->signs;
    for (int ib = 0; ib < 8; ib += 2, qh += 2) {
      const float db[2] = {d * static_cast<float>(1 + 2 * (b->scales[ib / 2] & 0xF)),
                           d * static_cast<float>(1 + 2 * (b->scales[ib / 2] >> 4))};
      for (int part = 0; part < 2; ++part, qs += 8, signs += 4) {
        for (int l = 0; l < 4; ++l, y += 8) {
          const auto* g1 = reinterpret_cast<const uint8_t*>(iq::iq3s_grid + (qs[2 * l] | ((qh[part] << (8 - 2 * l)) & 256)));
          const auto* g2 = reinterpret_cast<const uint8_t*>(iq::iq3s_grid + (qs[2 * l + 1] | ((qh[part] << (7 - 2 * l)) & 256)));
          for (int j = 0; j < 4; ++j) {
            y[j] = db[part] * static_cast<float>(g1[j]) * Sign(signs[l], j);
            y[j + 4] = db[part] * static_cast<float>(g2[j]) * Sign(signs[l], j + 4);
          }
        }
      }
    }
  }
}

void IQ1_S(const void* s, float* y, int64_t n) {
  for (const BlockIQ1_S* b = Blocks<BlockIQ1_S>(s); n > 0; n -= kQK_K, ++b) {
    const float d = H(b->d);
    const uint8_t* qs = b->qs;
    for (int ib = 0; ib < 8; ++ib, qs += 4) {
      const float dl = d * static_cast<float>(2 * ((b->qh[ib] >> 12) & 7) + 1);
      const float delta = b->qh[ib] & 0x8000 ? -iq::iq1s_delta : iq::iq1s_delta;
      for (int l = 0; l < 4; ++l, y += 8) {
        const auto* grid = reinterpret_cast<const int8_t*>(iq::iq1s_grid + (qs[l] | (((b->qh[ib] >> 3 * l) & 7) << 8)));
        for (int j = 0; j < 8; ++j) y[j] = dl * (static_cast<float>(grid[j]) + delta);
      }
    }
  }
}

void IQ1_M(const void* s, float* y, int64_t n) {
  for (const BlockIQ1_M* b = Blocks<BlockIQ1_M>(s); n > 0; n -= kQK_K, ++b) {
    uint16_t sc[4];
    std::memcpy(sc, b->scales, 8);
    const uint16_t scale = static_cast<uint16_t>((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) |
                                                 ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000));
    const float d = H(scale);
    const uint8_t* qs = b->qs;
    const uint8_t* qh = b->qh;
    for (int ib = 0; ib < 8; ++ib, qs += 4, qh += 2) {
      const float dl1 = d * static_cast<float>(2 * ((sc[ib / 2] >> (6 * (ib % 2) + 0)) & 7) + 1);
      const float dl2 = d * static_cast<float>(2 * ((sc[ib / 2] >> (6 * (ib % 2) + 3)) & 7) + 1);
      const int idx[4] = {qs[0] | ((qh[0] << 8) & 0x700), qs[1] | ((qh[0] << 4) & 0x700),
                          qs[2] | ((qh[1] << 8) & 0x700), qs[3] | ((qh[1] << 4) & 0x700)};
      const float delta[4] = {qh[0] & 0x08 ? -iq::iq1m_delta : iq::iq1m_delta,
                              qh[0] & 0x80 ? -iq::iq1m_delta : iq::iq1m_delta,
                              qh[1] & 0x08 ? -iq::iq1m_delta : iq::iq1m_delta,
                              qh[1] & 0x80 ? -iq::iq1m_delta : iq::iq1m_delta};
      for (int l = 0; l < 4; ++l, y += 8) {
        const auto* grid = reinterpret_cast<const int8_t*>(iq::iq1s_grid + idx[l]);
        const float dl = l < 2 ? dl1 : dl2;
        for (int j = 0; j < 8; ++j) y[j] = dl * (static_cast<float>(grid[j]) + delta[l]);
      }
    }
  }
}

// The grouped-integer types: fp16(d) * (q - z), the integer difference exact in float, one rounding.
template <int kBits, int G>
void WG(const void* s, float* y, int64_t n) {
  for (const auto* b = Blocks<BlockWG<kBits, G>>(s); n > 0; n -= G, ++b, y += G) {
    const float d = H(b->d);
    for (int e = 0; e < G; ++e) y[e] = static_cast<float>(GroupedCode(*b, e) - b->z) * d;
  }
}

// bitsandbytes' 4-bit types: level * absmax, one float multiply, as bitsandbytes dequantizes.
template <typename Block, Bnb4Type kT>
void NF(const void* s, float* y, int64_t n) {
  const std::array<float, 16>& levels = Bnb4Levels(kT);
  constexpr int kE = kNfBlockElems<Block>, kPer = kE / kNfBlockAbsmaxes<Block>;
  for (const auto* b = Blocks<Block>(s); n > 0; n -= kE, ++b, y += kE) {
    const float* d = NfAbsmaxes(*b);
    for (int e = 0; e < kE; ++e) y[e] = levels[static_cast<size_t>(NfCode(*b, e))] * d[e / kPer];
  }
}

// LLM.int8 rows: (q * SCB) * (1 / 127), as bitsandbytes dequantizes.
template <int G>
void I8R(const void* s, float* y, int64_t n) {
  for (const auto* b = Blocks<BlockI8R<G>>(s); n > 0; n -= G, ++b, y += G) {
    for (int e = 0; e < G; ++e) y[e] = Int8Value(b->qs[e], b->scb);
  }
}

}  // namespace

ToFloatFn ToFloatFor(GgmlType type) {
  switch (type) {
    case GgmlType::kF32: return F32;
    case GgmlType::kF16: return F16;
    case GgmlType::kBF16: return BF16;
    case GgmlType::kQ4_0: return Q4_0;
    case GgmlType::kQ4_1: return Q4_1;
    case GgmlType::kQ5_0: return Q5_0;
    case GgmlType::kQ5_1: return Q5_1;
    case GgmlType::kQ8_0: return Q8_0;
    case GgmlType::kQ2_K: return Q2_K;
    case GgmlType::kQ3_K: return Q3_K;
    case GgmlType::kQ4_K: return Q4_K;
    case GgmlType::kQ5_K: return Q5_K;
    case GgmlType::kQ6_K: return Q6_K;
    case GgmlType::kIQ4_NL: return IQ4_NL;
    case GgmlType::kIQ4_XS: return IQ4_XS;
    case GgmlType::kTQ1_0: return TQ1_0;
    case GgmlType::kTQ2_0: return TQ2_0;
    case GgmlType::kIQ2_XXS: return IQ2_XXS;
    case GgmlType::kIQ2_XS: return IQ2_XS;
    case GgmlType::kIQ2_S: return IQ2_S;
    case GgmlType::kIQ3_XXS: return IQ3_XXS;
    case GgmlType::kIQ3_S: return IQ3_S;
    case GgmlType::kIQ1_S: return IQ1_S;
    case GgmlType::kIQ1_M: return IQ1_M;
    case GgmlType::kW4G32: return WG<4, 32>;
    case GgmlType::kW4G64: return WG<4, 64>;
    case GgmlType::kW4G128: return WG<4, 128>;
    case GgmlType::kW8G32: return WG<8, 32>;
    case GgmlType::kW8G64: return WG<8, 64>;
    case GgmlType::kW8G128: return WG<8, 128>;
    case GgmlType::kNF4G32: return NF<BlockNF<32>, Bnb4Type::kNf4>;
    case GgmlType::kNF4G64: return NF<BlockNF<64>, Bnb4Type::kNf4>;
    case GgmlType::kNF4G64x2: return NF<BlockNFx2, Bnb4Type::kNf4>;
    case GgmlType::kFP4G32: return NF<BlockNF<32>, Bnb4Type::kFp4>;
    case GgmlType::kFP4G64: return NF<BlockNF<64>, Bnb4Type::kFp4>;
    case GgmlType::kFP4G64x2: return NF<BlockNFx2, Bnb4Type::kFp4>;
    case GgmlType::kI8R32: return I8R<32>;
    case GgmlType::kI8R256: return I8R<256>;
    default: return nullptr;
  }
}

bool DequantizeRow(GgmlType type, const void* src, float* dst, int64_t n) {
  ToFloatFn f = ToFloatFor(type);
  if (f == nullptr) return false;
  f(src, dst, n);
  return true;
}

}  // namespace lowbit

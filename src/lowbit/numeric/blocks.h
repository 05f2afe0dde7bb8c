// Block structs of every ggml quantized type lowbit computes with, field order = on-disk order
// (../shared/FORMATS.md B1). Each size is checked against the type table's block_bytes, so a struct
// and the table cannot drift apart. `d`/`dmin`/`m`/`s` are fp16 bit patterns unless noted.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "lowbit/numeric/ggml_type.h"

namespace lowbit {

inline constexpr int kQK = 32;    // elements per legacy block
inline constexpr int kQK_K = 256; // elements per K-quant / IQ super-block

struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[16];  // 32 x 4-bit; element j in the low nibble of qs[j], j+16 in the high nibble
};
struct BlockQ4_1 {
  uint16_t d, m;   // x = d*q + m
  uint8_t qs[16];  // as Q4_0
};
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];   // u32 LE: bit j = 5th bit of element j (0..31)
  uint8_t qs[16];  // low 4 bits as Q4_0
};
struct BlockQ5_1 {
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[16];
};
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[32];
};
struct BlockQ8_1 {
  uint16_t d;      // amax / 127
  uint16_t s;      // d * sum(qs)
  int8_t qs[32];
};
struct BlockQ2_K {
  uint8_t scales[16];  // per 16 elements: low nibble scale, high nibble min
  uint8_t qs[64];      // 2-bit quants: each 32 bytes cover 128 elements at shifts 0,2,4,6
  uint16_t d, dmin;
};
struct BlockQ3_K {
  uint8_t hmask[32];   // high bit (set: +0, clear: -4)
  uint8_t qs[64];      // low 2 bits, as Q2_K
  uint8_t scales[12];  // 16 x 6-bit scales, bias 32
  uint16_t d;
};
struct BlockQ4_K {
  uint16_t d, dmin;
  uint8_t scales[12];  // 8 x (6-bit scale, 6-bit min), see get_scale_min_k4 in FORMATS.md
  uint8_t qs[128];     // per 64 elements: 32 bytes, low nibbles first 32, high nibbles next 32
};
struct BlockQ5_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[32];      // 5th bits: pair of bits per 64 elements
  uint8_t qs[128];
};
struct BlockQ6_K {
  uint8_t ql[128];     // low 4 bits
  uint8_t qh[64];      // high 2 bits
  int8_t scales[16];   // per 16 elements
  uint16_t d;
};
struct BlockQ8_K {
  float d;             // fp32 scale
  int8_t qs[256];
  int16_t bsums[16];   // sums of each 16 quants
};
struct BlockIQ4_NL {
  uint16_t d;
  uint8_t qs[16];      // indices into kvalues_iq4nl, nibble order as Q4_0
};
struct BlockIQ4_XS {
  uint16_t d;
  uint16_t scales_h;   // high 2 bits of the 8 sub-block scales
  uint8_t scales_l[4]; // low 4 bits
  uint8_t qs[128];
};
struct BlockTQ1_0 {
  uint8_t qs[48];      // 5 ternary digits per byte (base 3, scaled by 256/243)
  uint8_t qh[4];       // 4 ternary digits per byte
  uint16_t d;
};
struct BlockTQ2_0 {
  uint8_t qs[64];      // 2-bit codes 0..2 meaning -1..1
  uint16_t d;
};
struct BlockIQ2_XXS {
  uint16_t d;
  uint16_t qs[32];
};
struct BlockIQ2_XS {
  uint16_t d;
  uint16_t qs[32];
  uint8_t scales[8];
};
struct BlockIQ2_S {
  uint16_t d;
  uint8_t qs[64];      // grid index low bits (32) then signs (32)
  uint8_t qh[8];
  uint8_t scales[8];
};
struct BlockIQ3_XXS {
  uint16_t d;
  uint8_t qs[96];      // grid indices (64) then scales and signs (32)
};
struct BlockIQ3_S {
  uint16_t d;
  uint8_t qs[64];
  uint8_t qh[8];
  uint8_t signs[32];
  uint8_t scales[4];
};
struct BlockIQ1_S {
  uint16_t d;
  uint8_t qs[32];
  uint16_t qh[8];
};
struct BlockIQ1_M {
  uint8_t qs[32];
  uint8_t qh[16];
  uint8_t scales[8];   // 3-bit sub-block scales; the fp16 super-block scale is spread over the top nibbles
};

// The grouped-integer types (internal rows W4G32 .. W8G128, numeric/ggml_type.h): one block is one
// group of G input columns of one row, value = fp16(d) * (q - z) with unsigned codes q and the
// effective integer zero point z (int16: GPTQ v1 with sym=False can store 2^bits, 256 at 8 bits).
// W4: element 32 s + j (j < 16) in the low nibble of qs[16 s + j], element 32 s + j + 16 in its high
// nibble (Q4_0's order within each 32-element sub-block s). W8: element j in qs[j].
template <int G>
struct BlockW4G {
  uint16_t d;
  int16_t z;
  uint8_t qs[G / 2];
};
template <int G>
struct BlockW8G {
  uint16_t d;
  int16_t z;
  uint8_t qs[G];
};
template <int kBits, int G>
using BlockWG = std::conditional_t<kBits == 4, BlockW4G<G>, BlockW8G<G>>;

// Code of element e (< G) of a grouped block.
template <int G>
inline int GroupedCode(const BlockW4G<G>& b, int e) {
  const uint8_t byte = b.qs[16 * (e / 32) + e % 16];
  return e % 32 < 16 ? byte & 0xF : byte >> 4;
}
template <int G>
inline int GroupedCode(const BlockW8G<G>& b, int e) {
  return b.qs[e];
}

// IQ4_XS: the scale of 32-element sub-block ib (0..7), 6 bits, bias 32 removed.
inline int IQ4XSScale(const BlockIQ4_XS& b, int ib) {
  return (((b.scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF) | (((b.scales_h >> (2 * ib)) & 3) << 4)) - 32;
}

// IQ4_XS: sets the 8 sub-block scales s (-32..31) into scales_l / scales_h (IQ4XSScale's inverse).
inline void SetIQ4XSScales(BlockIQ4_XS* b, const int* s) {
  b->scales_h = 0;
  std::memset(b->scales_l, 0, sizeof(b->scales_l));
  for (int ib = 0; ib < 8; ++ib) {
    const int ls = s[ib] + 32;
    b->scales_l[ib / 2] = static_cast<uint8_t>(b->scales_l[ib / 2] | (ls & 0xF) << (4 * (ib % 2)));
    b->scales_h = static_cast<uint16_t>(b->scales_h | (ls >> 4) << (2 * ib));
  }
}

// Q3_K: the 12 packed bytes as 16 6-bit scales, bias 32 not yet removed.
inline void Q3KScales(const uint8_t* packed, int8_t* out) {
  uint32_t aux[4];
  std::memcpy(aux, packed, 12);
  const uint32_t tmp = aux[2], km1 = 0x03030303, km2 = 0x0f0f0f0f;
  aux[2] = ((aux[0] >> 4) & km2) | (((tmp >> 4) & km1) << 4);
  aux[3] = ((aux[1] >> 4) & km2) | (((tmp >> 6) & km1) << 4);
  aux[0] = (aux[0] & km2) | (((tmp >> 0) & km1) << 4);
  aux[1] = (aux[1] & km2) | (((tmp >> 2) & km1) << 4);
  std::memcpy(out, aux, 16);
}

// Q3_K: 16 6-bit scales (bias 32 included) into the 12 bytes (Q3KScales' inverse).
inline void PackQ3KScales(const int* ls, uint8_t* out) {
  std::memset(out, 0, 12);
  for (int k = 0; k < 16; ++k) {
    const int v = ls[k];
    if (k < 8) out[k] = static_cast<uint8_t>(out[k] | (v & 0xF));
    else out[k - 8] = static_cast<uint8_t>(out[k - 8] | (v & 0xF) << 4);
    out[8 + k % 4] = static_cast<uint8_t>(out[8 + k % 4] | ((v >> 4) & 3) << (2 * (k / 4)));
  }
}

// Q4_K / Q5_K: 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes.
inline void ScaleMinK4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// Q4_K / Q5_K: 8 (scale, min) 6-bit pairs into the 12 bytes (ScaleMinK4's inverse).
inline void PackK4Scales(const int* ls, const int* lm, uint8_t* q) {
  std::memset(q, 0, 12);
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      q[j] = static_cast<uint8_t>(q[j] | ls[j]);
      q[j + 4] = static_cast<uint8_t>(q[j + 4] | lm[j]);
    } else {
      q[j + 4] = static_cast<uint8_t>((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
      q[j - 4] = static_cast<uint8_t>(q[j - 4] | (ls[j] >> 4) << 6);
      q[j] = static_cast<uint8_t>(q[j] | (lm[j] >> 4) << 6);
    }
  }
}

// Q4_K / Q5_K: all 8 scales and 8 mins at once (ScaleMinK4 for every j, 32 bits at a time).
inline void ScalesMinsK4(const uint8_t* packed, uint8_t* sc, uint8_t* mn) {
  uint32_t u[4];
  std::memcpy(u, packed, 12);
  u[3] = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4);
  const uint32_t mins_lo = u[1] & 0x3f3f3f3f;
  u[1] = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);
  u[2] = mins_lo;
  u[0] &= 0x3f3f3f3f;
  std::memcpy(sc, u, 8);
  std::memcpy(mn, u + 2, 8);
}

#define LOWBIT_BLOCK_SIZE(T, type) \
  static_assert(sizeof(T) == 0 + static_cast<size_t>(type), #T " size does not match the ggml type table")
LOWBIT_BLOCK_SIZE(BlockQ4_0, 18);
LOWBIT_BLOCK_SIZE(BlockQ4_1, 20);
LOWBIT_BLOCK_SIZE(BlockQ5_0, 22);
LOWBIT_BLOCK_SIZE(BlockQ5_1, 24);
LOWBIT_BLOCK_SIZE(BlockQ8_0, 34);
LOWBIT_BLOCK_SIZE(BlockQ8_1, 36);
LOWBIT_BLOCK_SIZE(BlockQ2_K, 84);
LOWBIT_BLOCK_SIZE(BlockQ3_K, 110);
LOWBIT_BLOCK_SIZE(BlockQ4_K, 144);
LOWBIT_BLOCK_SIZE(BlockQ5_K, 176);
LOWBIT_BLOCK_SIZE(BlockQ6_K, 210);
LOWBIT_BLOCK_SIZE(BlockQ8_K, 292);
LOWBIT_BLOCK_SIZE(BlockIQ4_NL, 18);
LOWBIT_BLOCK_SIZE(BlockIQ4_XS, 136);
LOWBIT_BLOCK_SIZE(BlockTQ1_0, 54);
LOWBIT_BLOCK_SIZE(BlockTQ2_0, 66);
LOWBIT_BLOCK_SIZE(BlockIQ2_XXS, 66);
LOWBIT_BLOCK_SIZE(BlockIQ2_XS, 74);
LOWBIT_BLOCK_SIZE(BlockIQ2_S, 82);
LOWBIT_BLOCK_SIZE(BlockIQ3_XXS, 98);
LOWBIT_BLOCK_SIZE(BlockIQ3_S, 110);
LOWBIT_BLOCK_SIZE(BlockIQ1_S, 50);
LOWBIT_BLOCK_SIZE(BlockIQ1_M, 56);
LOWBIT_BLOCK_SIZE(BlockW4G<32>, 20);
LOWBIT_BLOCK_SIZE(BlockW4G<64>, 36);
LOWBIT_BLOCK_SIZE(BlockW4G<128>, 68);
LOWBIT_BLOCK_SIZE(BlockW8G<32>, 36);
LOWBIT_BLOCK_SIZE(BlockW8G<64>, 68);
LOWBIT_BLOCK_SIZE(BlockW8G<128>, 132);
#undef LOWBIT_BLOCK_SIZE

// The struct for each type, for code templated over types.
template <GgmlType T> struct BlockOf;
#define LOWBIT_BLOCK_OF(T, B) template <> struct BlockOf<GgmlType::T> { using type = B; }
LOWBIT_BLOCK_OF(kQ4_0, BlockQ4_0); LOWBIT_BLOCK_OF(kQ4_1, BlockQ4_1); LOWBIT_BLOCK_OF(kQ5_0, BlockQ5_0);
LOWBIT_BLOCK_OF(kQ5_1, BlockQ5_1); LOWBIT_BLOCK_OF(kQ8_0, BlockQ8_0); LOWBIT_BLOCK_OF(kQ8_1, BlockQ8_1);
LOWBIT_BLOCK_OF(kQ2_K, BlockQ2_K); LOWBIT_BLOCK_OF(kQ3_K, BlockQ3_K); LOWBIT_BLOCK_OF(kQ4_K, BlockQ4_K);
LOWBIT_BLOCK_OF(kQ5_K, BlockQ5_K); LOWBIT_BLOCK_OF(kQ6_K, BlockQ6_K); LOWBIT_BLOCK_OF(kQ8_K, BlockQ8_K);
LOWBIT_BLOCK_OF(kIQ4_NL, BlockIQ4_NL); LOWBIT_BLOCK_OF(kIQ4_XS, BlockIQ4_XS); LOWBIT_BLOCK_OF(kTQ1_0, BlockTQ1_0);
LOWBIT_BLOCK_OF(kTQ2_0, BlockTQ2_0); LOWBIT_BLOCK_OF(kIQ2_XXS, BlockIQ2_XXS); LOWBIT_BLOCK_OF(kIQ2_XS, BlockIQ2_XS);
LOWBIT_BLOCK_OF(kIQ2_S, BlockIQ2_S); LOWBIT_BLOCK_OF(kIQ3_XXS, BlockIQ3_XXS); LOWBIT_BLOCK_OF(kIQ3_S, BlockIQ3_S);
LOWBIT_BLOCK_OF(kIQ1_S, BlockIQ1_S); LOWBIT_BLOCK_OF(kIQ1_M, BlockIQ1_M);
LOWBIT_BLOCK_OF(kW4G32, BlockW4G<32>); LOWBIT_BLOCK_OF(kW4G64, BlockW4G<64>); LOWBIT_BLOCK_OF(kW4G128, BlockW4G<128>);
LOWBIT_BLOCK_OF(kW8G32, BlockW8G<32>); LOWBIT_BLOCK_OF(kW8G64, BlockW8G<64>); LOWBIT_BLOCK_OF(kW8G128, BlockW8G<128>);
#undef LOWBIT_BLOCK_OF

}  // namespace lowbit

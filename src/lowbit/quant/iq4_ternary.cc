// IQ4_NL / IQ4_XS (non-linear 4-bit code book) and TQ1_0 / TQ2_0 (ternary) packers.
#include <algorithm>
#include <cstring>

#include "lowbit/numeric/blocks.h"
#include "lowbit/numeric/half.h"
#include "lowbit/numeric/iq_tables.h"
#include "lowbit/quant/quantize.h"
#include "lowbit/quant/search.h"
#include "lowbit/quant/weights.h"

namespace lowbit {
namespace {

const search::Levels& Iq4Levels() {
  static const float* book = [] {
    static float v[16];
    for (int i = 0; i < 16; ++i) v[i] = static_cast<float>(iq::kvalues_iq4nl[i]);
    return v;
  }();
  static const search::Levels levels{16, 0, book};
  return levels;
}

// Search effort (see search.h and kquants.cc): IQ4 types have no speed target, so more lanes.
constexpr search::Effort kIq4Effort{16, 2, 16, 1, 2, 0.05f, 0.10f};

void PackNibbles(const uint8_t* idx, uint8_t* qs) {
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>(idx[j] | (idx[j + 16] << 4));
}

}  // namespace

void QuantizeIQ4_NL(const float* x, void* dst, int64_t n, const float* imatrix) {
  auto* b = static_cast<BlockIQ4_NL*>(dst);
  float w[kQK];
  for (; n > 0; n -= kQK, x += kQK, ++b, imatrix = imatrix ? imatrix + kQK : nullptr) {
    BlockWeights(imatrix, kQK, kQK, w);
    float d;
    uint8_t idx[kQK];
    search::QuantizeScaled(Iq4Levels(), x, w, kQK, kIq4Effort, &d, idx);
    b->d = Fp32ToFp16(d);
    PackNibbles(idx, b->qs);
  }
}

void QuantizeIQ4_XS(const float* x, void* dst, int64_t n, const float* imatrix) {
  auto* b = static_cast<BlockIQ4_XS*>(dst);
  float w[kQK_K];
  const search::SymmetricSpec spec{8, 32, Iq4Levels(), -32, 31, kIq4Effort};
  for (; n > 0; n -= kQK_K, x += kQK_K, ++b, imatrix = imatrix ? imatrix + kQK_K : nullptr) {
    BlockWeights(imatrix, kQK_K, 32, w);
    float d;
    int s[8];
    uint8_t idx[kQK_K];
    search::QuantizeSymmetric(spec, x, w, &d, s, idx);
    b->d = Fp32ToFp16(d);
    SetIQ4XSScales(b, s);
    for (int ib = 0; ib < 8; ++ib) PackNibbles(idx + 32 * ib, b->qs + 16 * ib);
  }
}

namespace {

// Base-3 digits t (each -1..1, most significant first) into one byte, as ggml's dequantizer reads
// them back: byte = ceil(v * 256 / 243) with v the base-3 number (5 digits; fewer are padded).
uint8_t PackTrits(const int8_t* t, int count) {
  int v = 0;
  for (int k = 0; k < 5; ++k) v = v * 3 + (k < count ? t[k] + 1 : 0);
  return static_cast<uint8_t>((v * 256 + 242) / 243);
}

// Weights, ternary search and the stored scale of one 256-value block.
void TernaryBlock(const float* x, const float* imatrix, uint16_t* d_out, int8_t* t) {
  float w[kQK_K];
  BlockWeights(imatrix, kQK_K, kQK_K, w);
  float d;
  search::QuantizeTernary(x, w, kQK_K, &d, t);
  *d_out = Fp32ToFp16(d);
}

}  // namespace

void QuantizeTQ1_0(const float* x, void* dst, int64_t n, const float* imatrix) {
  auto* b = static_cast<BlockTQ1_0*>(dst);
  for (; n > 0; n -= kQK_K, x += kQK_K, ++b, imatrix = imatrix ? imatrix + kQK_K : nullptr) {
    int8_t t[kQK_K];
    TernaryBlock(x, imatrix, &b->d, t);
    int8_t digits[5];
    for (int m = 0; m < 32; ++m) {
      for (int k = 0; k < 5; ++k) digits[k] = t[k * 32 + m];
      b->qs[m] = PackTrits(digits, 5);
    }
    for (int m = 0; m < 16; ++m) {
      for (int k = 0; k < 5; ++k) digits[k] = t[160 + k * 16 + m];
      b->qs[32 + m] = PackTrits(digits, 5);
    }
    for (int j = 0; j < 4; ++j) {
      for (int k = 0; k < 4; ++k) digits[k] = t[240 + k * 4 + j];
      b->qh[j] = PackTrits(digits, 4);
    }
  }
}

void QuantizeTQ2_0(const float* x, void* dst, int64_t n, const float* imatrix) {
  auto* b = static_cast<BlockTQ2_0*>(dst);
  for (; n > 0; n -= kQK_K, x += kQK_K, ++b, imatrix = imatrix ? imatrix + kQK_K : nullptr) {
    int8_t t[kQK_K];
    TernaryBlock(x, imatrix, &b->d, t);
    std::memset(b->qs, 0, 64);
    for (int e = 0; e < kQK_K; ++e) {
      b->qs[(e / 128) * 32 + e % 32] |= static_cast<uint8_t>((t[e] + 1) << (2 * ((e % 128) / 32)));
    }
  }
}

}  // namespace lowbit

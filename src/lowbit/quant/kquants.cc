// K-quant packers: search (search.h) then lay the result out in ggml's block format.
#include <algorithm>
#include <cstring>

#include "lowbit/numeric/blocks.h"
#include "lowbit/numeric/half.h"
#include "lowbit/quant/quantize.h"
#include "lowbit/quant/search.h"
#include "lowbit/quant/weights.h"

namespace lowbit {
namespace {

// 2-bit codes in Q2_K/Q3_K order: element e -> qs[(e/128)*32 + ((e%32)/16)*16 + e%16] at bit 2*((e%128)/32).
void PackLow2(const uint8_t* L, uint8_t* qs) {
  std::memset(qs, 0, 64);
  for (int e = 0; e < 256; ++e) {
    qs[(e / 128) * 32 + e % 32] |= static_cast<uint8_t>((L[e] & 3) << (2 * ((e % 128) / 32)));
  }
}

// Search effort per type ({fit lanes, fit refits, scan, starts, descent, clip, short_of}),
// chosen so that each type is at least 2x faster than ggml's quantizer while meeting the error
// targets of docs/QUALITY.md (the sweep is there).
constexpr search::Effort kQ2Effort{8, 2, 8, 1, 1};
constexpr search::Effort kQ3Effort{8, 2, 8, 1, 2, 0.40f, 0.25f};
constexpr search::Effort kQ4Effort{8, 2, 8, 1, 2};
constexpr search::Effort kQ5Effort{8, 2, 8, 1, 1};
constexpr search::Effort kQ6Effort{8, 1, 8, 1, 1, 0.05f, 0.10f};

}  // namespace

void QuantizeQ2_K(const float* x, void* dst, int64_t n, const float* imatrix) {
  auto* b = static_cast<BlockQ2_K*>(dst);
  float w[kQK_K];
  for (; n > 0; n -= kQK_K, x += kQK_K, ++b, imatrix = imatrix ? imatrix + kQK_K : nullptr) {
    BlockWeights(imatrix, kQK_K, 16, w);
    float d, dmin;
    int ls[16], lm[16];
    uint8_t L[kQK_K];
    search::QuantizeAffine({16, 16, 3, 15, kQ2Effort}, x, w, &d, &dmin, ls, lm, L);
    b->d = Fp32ToFp16(d);
    b->dmin = Fp32ToFp16(dmin);
    for (int j = 0; j < 16; ++j) b->scales[j] = static_cast<uint8_t>(ls[j] | (lm[j] << 4));
    PackLow2(L, b->qs);
  }
}

void QuantizeQ3_K(const float* x, void* dst, int64_t n, const float* imatrix) {
  auto* b = static_cast<BlockQ3_K*>(dst);
  float w[kQK_K];
  const search::SymmetricSpec spec{16, 16, {8, -4, nullptr}, -32, 31, kQ3Effort};
  for (; n > 0; n -= kQK_K, x += kQK_K, ++b, imatrix = imatrix ? imatrix + kQK_K : nullptr) {
    BlockWeights(imatrix, kQK_K, 16, w);
    float d;
    int s[16];
    uint8_t idx[kQK_K];  // level index = q + 4 in [0, 8)
    search::QuantizeSymmetric(spec, x, w, &d, s, idx);
    b->d = Fp32ToFp16(d);
    int ls[16];
    for (int j = 0; j < 16; ++j) ls[j] = s[j] + 32;
    PackQ3KScales(ls, b->scales);
    PackLow2(idx, b->qs);
    std::memset(b->hmask, 0, 32);
    for (int e = 0; e < kQK_K; ++e) {
      if (idx[e] >= 4) b->hmask[e % 32] |= static_cast<uint8_t>(1u << (e / 32));
    }
  }
}

template <int kBits>
void QuantizeK45(const float* x, void* dst, int64_t n, const float* imatrix) {
  using Block = std::conditional_t<kBits == 4, BlockQ4_K, BlockQ5_K>;
  auto* b = static_cast<Block*>(dst);
  float w[kQK_K];
  for (; n > 0; n -= kQK_K, x += kQK_K, ++b, imatrix = imatrix ? imatrix + kQK_K : nullptr) {
    BlockWeights(imatrix, kQK_K, 32, w);
    float d, dmin;
    int ls[8], lm[8];
    uint8_t L[kQK_K];
    search::QuantizeAffine({8, 32, (1 << kBits) - 1, 63, kBits == 4 ? kQ4Effort : kQ5Effort}, x, w, &d, &dmin, ls, lm, L);
    b->d = Fp32ToFp16(d);
    b->dmin = Fp32ToFp16(dmin);
    PackK4Scales(ls, lm, b->scales);
    if constexpr (kBits == 5) std::memset(b->qh, 0, 32);
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t lo = L[64 * c + l], hi = L[64 * c + 32 + l];
        b->qs[32 * c + l] = static_cast<uint8_t>((lo & 0xF) | ((hi & 0xF) << 4));
        if constexpr (kBits == 5) {
          b->qh[l] |= static_cast<uint8_t>(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
        }
      }
    }
  }
}

void QuantizeQ4_K(const float* x, void* dst, int64_t n, const float* imatrix) { QuantizeK45<4>(x, dst, n, imatrix); }
void QuantizeQ5_K(const float* x, void* dst, int64_t n, const float* imatrix) { QuantizeK45<5>(x, dst, n, imatrix); }

void QuantizeQ6_K(const float* x, void* dst, int64_t n, const float* imatrix) {
  auto* b = static_cast<BlockQ6_K*>(dst);
  float w[kQK_K];
  const search::SymmetricSpec spec{16, 16, {64, -32, nullptr}, -128, 127, kQ6Effort};
  for (; n > 0; n -= kQK_K, x += kQK_K, ++b, imatrix = imatrix ? imatrix + kQK_K : nullptr) {
    BlockWeights(imatrix, kQK_K, 16, w);
    float d;
    int s[16];
    uint8_t L[kQK_K];  // q + 32 in [0, 64)
    search::QuantizeSymmetric(spec, x, w, &d, s, L);
    b->d = Fp32ToFp16(d);
    for (int j = 0; j < 16; ++j) b->scales[j] = static_cast<int8_t>(s[j]);
    for (int h = 0; h < 2; ++h) {
      const uint8_t* Lh = L + 128 * h;
      for (int l = 0; l < 32; ++l) {
        b->ql[64 * h + l] = static_cast<uint8_t>((Lh[l] & 0xF) | ((Lh[l + 64] & 0xF) << 4));
        b->ql[64 * h + l + 32] = static_cast<uint8_t>((Lh[l + 32] & 0xF) | ((Lh[l + 96] & 0xF) << 4));
        b->qh[32 * h + l] = static_cast<uint8_t>((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) |
                                                 ((Lh[l + 64] >> 4) << 4) | ((Lh[l + 96] >> 4) << 6));
      }
    }
  }
}

}  // namespace lowbit

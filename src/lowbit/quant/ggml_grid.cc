#include "lowbit/quant/ggml_grid.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "lowbit/numeric/blocks.h"
#include "lowbit/numeric/bnb.h"
#include "lowbit/numeric/half.h"
#include "lowbit/numeric/iq_tables.h"

namespace lowbit {
namespace {

inline float H(uint16_t h) { return Fp16ToFp32(h); }

// ---- 32-element nibble layout (Q4_0, Q4_1, IQ4_NL; Q5's low bits): element j in the low nibble of
// qs[j], element j + 16 in the high nibble.
void GetNibbles(const uint8_t* qs, uint8_t* c) {
  for (int j = 0; j < 16; ++j) {
    c[j] = qs[j] & 0xF;
    c[j + 16] = qs[j] >> 4;
  }
}
void SetNibbles(uint8_t* qs, const uint8_t* c) {
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>((c[j] & 0xF) | ((c[j + 16] & 0xF) << 4));
}
// Q5: the fifth bits in a little-endian u32.
void GetQ5(const uint8_t* qs, const uint8_t* qh_bytes, uint8_t* c) {
  uint32_t qh;
  std::memcpy(&qh, qh_bytes, 4);
  GetNibbles(qs, c);
  for (int j = 0; j < 32; ++j) c[j] = static_cast<uint8_t>(c[j] | (((qh >> j) & 1u) << 4));
}
void SetQ5(uint8_t* qs, uint8_t* qh_bytes, const uint8_t* c) {
  SetNibbles(qs, c);
  uint32_t qh = 0;
  for (int j = 0; j < 32; ++j) qh |= static_cast<uint32_t>((c[j] >> 4) & 1u) << j;
  std::memcpy(qh_bytes, &qh, 4);
}

void Fill(float* a, float v, int n) { std::fill(a, a + n, v); }

template <class B>
const B& Blk(const void* p) { return *static_cast<const B*>(p); }
template <class B>
B& Blk(void* p) { return *static_cast<B*>(p); }

// ---- legacy 32-element types
void GridQ4_0(const void* p, float* a, float* b) { Fill(a, H(Blk<BlockQ4_0>(p).d), 32); Fill(b, 0, 32); }
void GetQ4_0(const void* p, uint8_t* c) { GetNibbles(Blk<BlockQ4_0>(p).qs, c); }
void SetQ4_0(void* p, const uint8_t* c) { SetNibbles(Blk<BlockQ4_0>(p).qs, c); }

void GridQ4_1(const void* p, float* a, float* b) { Fill(a, H(Blk<BlockQ4_1>(p).d), 32); Fill(b, H(Blk<BlockQ4_1>(p).m), 32); }
void GetQ4_1(const void* p, uint8_t* c) { GetNibbles(Blk<BlockQ4_1>(p).qs, c); }
void SetQ4_1(void* p, const uint8_t* c) { SetNibbles(Blk<BlockQ4_1>(p).qs, c); }

void GridQ5_0(const void* p, float* a, float* b) { Fill(a, H(Blk<BlockQ5_0>(p).d), 32); Fill(b, 0, 32); }
void GetQ5_0(const void* p, uint8_t* c) { GetQ5(Blk<BlockQ5_0>(p).qs, Blk<BlockQ5_0>(p).qh, c); }
void SetQ5_0(void* p, const uint8_t* c) { SetQ5(Blk<BlockQ5_0>(p).qs, Blk<BlockQ5_0>(p).qh, c); }

void GridQ5_1(const void* p, float* a, float* b) { Fill(a, H(Blk<BlockQ5_1>(p).d), 32); Fill(b, H(Blk<BlockQ5_1>(p).m), 32); }
void GetQ5_1(const void* p, uint8_t* c) { GetQ5(Blk<BlockQ5_1>(p).qs, Blk<BlockQ5_1>(p).qh, c); }
void SetQ5_1(void* p, const uint8_t* c) { SetQ5(Blk<BlockQ5_1>(p).qs, Blk<BlockQ5_1>(p).qh, c); }

// Q8_0 codes are q + 127: ggml's quantizer writes [-127, 127] and so does this grid.
void GridQ8_0(const void* p, float* a, float* b) { Fill(a, H(Blk<BlockQ8_0>(p).d), 32); Fill(b, 0, 32); }
void GetQ8_0(const void* p, uint8_t* c) {
  for (int j = 0; j < 32; ++j) c[j] = static_cast<uint8_t>(std::max(-127, static_cast<int>(Blk<BlockQ8_0>(p).qs[j])) + 127);
}
void SetQ8_0(void* p, const uint8_t* c) {
  for (int j = 0; j < 32; ++j) Blk<BlockQ8_0>(p).qs[j] = static_cast<int8_t>(c[j] - 127);
}

void GridIQ4_NL(const void* p, float* a, float* b) { Fill(a, H(Blk<BlockIQ4_NL>(p).d), 32); Fill(b, 0, 32); }
void GetIQ4_NL(const void* p, uint8_t* c) { GetNibbles(Blk<BlockIQ4_NL>(p).qs, c); }
void SetIQ4_NL(void* p, const uint8_t* c) { SetNibbles(Blk<BlockIQ4_NL>(p).qs, c); }

// ---- 2-bit planes of Q2_K / Q3_K / TQ2_0: element e at qs[(e/128)*32 + e%32], bits 2*((e%128)/32).
inline int LowPos(int e) { return (e / 128) * 32 + e % 32; }
inline int LowShift(int e) { return 2 * ((e % 128) / 32); }
void GetLow2(const uint8_t* qs, uint8_t* c) {
  for (int e = 0; e < 256; ++e) c[e] = (qs[LowPos(e)] >> LowShift(e)) & 3;
}
void SetLow2(uint8_t* qs, const uint8_t* c) {
  std::memset(qs, 0, 64);
  for (int e = 0; e < 256; ++e) qs[LowPos(e)] |= static_cast<uint8_t>((c[e] & 3) << LowShift(e));
}

void GridQ2_K(const void* p, float* a, float* b) {
  const auto& blk = Blk<BlockQ2_K>(p);
  const float d = H(blk.d), dmin = H(blk.dmin);
  for (int s = 0; s < 16; ++s) {
    Fill(a + 16 * s, d * static_cast<float>(blk.scales[s] & 0xF), 16);
    Fill(b + 16 * s, -(dmin * static_cast<float>(blk.scales[s] >> 4)), 16);
  }
}
void GetQ2_K(const void* p, uint8_t* c) { GetLow2(Blk<BlockQ2_K>(p).qs, c); }
void SetQ2_K(void* p, const uint8_t* c) { SetLow2(Blk<BlockQ2_K>(p).qs, c); }

// Q3_K code = low 2 bits + 4 * hmask bit, level = code - 4.
void GridQ3_K(const void* p, float* a, float* b) {
  const auto& blk = Blk<BlockQ3_K>(p);
  int8_t sc[16];
  Q3KScales(blk.scales, sc);
  const float d = H(blk.d);
  for (int s = 0; s < 16; ++s) Fill(a + 16 * s, d * static_cast<float>(sc[s] - 32), 16);
  Fill(b, 0, 256);
}
void GetQ3_K(const void* p, uint8_t* c) {
  const auto& blk = Blk<BlockQ3_K>(p);
  GetLow2(blk.qs, c);
  for (int e = 0; e < 256; ++e) c[e] = static_cast<uint8_t>(c[e] | (((blk.hmask[e % 32] >> (e / 32)) & 1) << 2));
}
void SetQ3_K(void* p, const uint8_t* c) {
  auto& blk = Blk<BlockQ3_K>(p);
  SetLow2(blk.qs, c);
  std::memset(blk.hmask, 0, 32);
  for (int e = 0; e < 256; ++e) blk.hmask[e % 32] |= static_cast<uint8_t>(((c[e] >> 2) & 1) << (e / 32));
}

// Q4_K / Q5_K: per 64 elements, 32 bytes: low nibbles = elements 0..31, high = 32..63 (+ qh bits).
template <class B>
void GridK45(const void* p, float* a, float* b) {
  const auto& blk = Blk<B>(p);
  const float d = H(blk.d), dmin = H(blk.dmin);
  for (int s = 0; s < 8; ++s) {
    uint8_t sc, m;
    ScaleMinK4(s, blk.scales, &sc, &m);
    Fill(a + 32 * s, d * sc, 32);
    Fill(b + 32 * s, -(dmin * m), 32);
  }
}
void GetQ4_K(const void* p, uint8_t* c) {
  const auto& blk = Blk<BlockQ4_K>(p);
  for (int k = 0; k < 4; ++k)
    for (int l = 0; l < 32; ++l) {
      c[64 * k + l] = blk.qs[32 * k + l] & 0xF;
      c[64 * k + 32 + l] = blk.qs[32 * k + l] >> 4;
    }
}
void SetQ4_K(void* p, const uint8_t* c) {
  auto& blk = Blk<BlockQ4_K>(p);
  for (int k = 0; k < 4; ++k)
    for (int l = 0; l < 32; ++l) blk.qs[32 * k + l] = static_cast<uint8_t>((c[64 * k + l] & 0xF) | ((c[64 * k + 32 + l] & 0xF) << 4));
}
void GetQ5_K(const void* p, uint8_t* c) {
  const auto& blk = Blk<BlockQ5_K>(p);
  for (int k = 0; k < 4; ++k)
    for (int l = 0; l < 32; ++l) {
      c[64 * k + l] = static_cast<uint8_t>((blk.qs[32 * k + l] & 0xF) | (((blk.qh[l] >> (2 * k)) & 1) << 4));
      c[64 * k + 32 + l] = static_cast<uint8_t>((blk.qs[32 * k + l] >> 4) | (((blk.qh[l] >> (2 * k + 1)) & 1) << 4));
    }
}
void SetQ5_K(void* p, const uint8_t* c) {
  auto& blk = Blk<BlockQ5_K>(p);
  std::memset(blk.qh, 0, 32);
  for (int k = 0; k < 4; ++k)
    for (int l = 0; l < 32; ++l) {
      const uint8_t lo = c[64 * k + l], hi = c[64 * k + 32 + l];
      blk.qs[32 * k + l] = static_cast<uint8_t>((lo & 0xF) | ((hi & 0xF) << 4));
      blk.qh[l] = static_cast<uint8_t>(blk.qh[l] | ((lo >> 4) << (2 * k)) | ((hi >> 4) << (2 * k + 1)));
    }
}

// Q6_K code = q + 32; per half h (128 elements) ql/qh interleave 4 quarter rows of 32.
void GridQ6_K(const void* p, float* a, float* b) {
  const auto& blk = Blk<BlockQ6_K>(p);
  const float d = H(blk.d);
  for (int s = 0; s < 16; ++s) Fill(a + 16 * s, d * static_cast<float>(blk.scales[s]), 16);
  Fill(b, 0, 256);
}
void GetQ6_K(const void* p, uint8_t* c) {
  const auto& blk = Blk<BlockQ6_K>(p);
  for (int h = 0; h < 2; ++h) {
    const uint8_t* ql = blk.ql + 64 * h;
    const uint8_t* qh = blk.qh + 32 * h;
    uint8_t* ch = c + 128 * h;
    for (int l = 0; l < 32; ++l) {
      ch[l] = static_cast<uint8_t>((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4));
      ch[l + 32] = static_cast<uint8_t>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4));
      ch[l + 64] = static_cast<uint8_t>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
      ch[l + 96] = static_cast<uint8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
    }
  }
}
void SetQ6_K(void* p, const uint8_t* c) {
  auto& blk = Blk<BlockQ6_K>(p);
  for (int h = 0; h < 2; ++h) {
    const uint8_t* L = c + 128 * h;
    for (int l = 0; l < 32; ++l) {
      blk.ql[64 * h + l] = static_cast<uint8_t>((L[l] & 0xF) | ((L[l + 64] & 0xF) << 4));
      blk.ql[64 * h + l + 32] = static_cast<uint8_t>((L[l + 32] & 0xF) | ((L[l + 96] & 0xF) << 4));
      blk.qh[32 * h + l] = static_cast<uint8_t>((L[l] >> 4) | ((L[l + 32] >> 4) << 2) | ((L[l + 64] >> 4) << 4) | ((L[l + 96] >> 4) << 6));
    }
  }
}

void GridIQ4_XS(const void* p, float* a, float* b) {
  const auto& blk = Blk<BlockIQ4_XS>(p);
  const float d = H(blk.d);
  for (int ib = 0; ib < 8; ++ib) Fill(a + 32 * ib, d * static_cast<float>(IQ4XSScale(blk, ib)), 32);
  Fill(b, 0, 256);
}
void GetIQ4_XS(const void* p, uint8_t* c) {
  for (int ib = 0; ib < 8; ++ib) GetNibbles(Blk<BlockIQ4_XS>(p).qs + 16 * ib, c + 32 * ib);
}
void SetIQ4_XS(void* p, const uint8_t* c) {
  for (int ib = 0; ib < 8; ++ib) SetNibbles(Blk<BlockIQ4_XS>(p).qs + 16 * ib, c + 32 * ib);
}

// TQ2_0: code 0..2 stands for -1..1.
void GridTQ2_0(const void* p, float* a, float* b) { Fill(a, H(Blk<BlockTQ2_0>(p).d), 256); Fill(b, 0, 256); }
void GetTQ2_0(const void* p, uint8_t* c) { GetLow2(Blk<BlockTQ2_0>(p).qs, c); }
void SetTQ2_0(void* p, const uint8_t* c) { SetLow2(Blk<BlockTQ2_0>(p).qs, c); }

// bitsandbytes' NF4 in lowbit's internal rows (NF4G32 / NF4G64, numeric/bnb.h): level[code] x the
// block's absmax, one multiply as its dequantizer. NF4's 16 levels ascend in code order (FP4's do
// not, so FP4 has no row here).
template <int G>
void GridNF4(const void* p, float* a, float* b) { Fill(a, Blk<BlockNF<G>>(p).d, G); Fill(b, 0, G); }
template <int G>
void GetNF4(const void* p, uint8_t* c) {
  for (int e = 0; e < G; ++e) c[e] = static_cast<uint8_t>(NfCode(Blk<BlockNF<G>>(p), e));
}
template <int G>
void SetNF4(void* p, const uint8_t* c) {
  auto& blk = Blk<BlockNF<G>>(p);
  for (int e = 0; e < G; ++e) {
    const int nib = NfNibbleOf(&blk, e);
    uint8_t& byte = blk.qs[nib / 2];
    byte = static_cast<uint8_t>((byte & ~(0xF << (4 * (nib % 2)))) | (c[e] & 0xF) << (4 * (nib % 2)));
  }
}

const float* Iq4Book() {
  static const float* book = [] {
    static float v[16];
    for (int i = 0; i < 16; ++i) v[i] = static_cast<float>(iq::kvalues_iq4nl[i]);
    return v;
  }();
  return book;
}

const std::vector<GgmlGrid>& Table() {
  static const std::vector<GgmlGrid> table = {
    {GgmlType::kQ4_0, 32, 16, -8, nullptr, GridQ4_0, GetQ4_0, SetQ4_0},
    {GgmlType::kQ4_1, 32, 16, 0, nullptr, GridQ4_1, GetQ4_1, SetQ4_1},
    {GgmlType::kQ5_0, 32, 32, -16, nullptr, GridQ5_0, GetQ5_0, SetQ5_0},
    {GgmlType::kQ5_1, 32, 32, 0, nullptr, GridQ5_1, GetQ5_1, SetQ5_1},
    {GgmlType::kQ8_0, 32, 255, -127, nullptr, GridQ8_0, GetQ8_0, SetQ8_0},
    {GgmlType::kQ2_K, 256, 4, 0, nullptr, GridQ2_K, GetQ2_K, SetQ2_K},
    {GgmlType::kQ3_K, 256, 8, -4, nullptr, GridQ3_K, GetQ3_K, SetQ3_K},
    {GgmlType::kQ4_K, 256, 16, 0, nullptr, GridK45<BlockQ4_K>, GetQ4_K, SetQ4_K},
    {GgmlType::kQ5_K, 256, 32, 0, nullptr, GridK45<BlockQ5_K>, GetQ5_K, SetQ5_K},
    {GgmlType::kQ6_K, 256, 64, -32, nullptr, GridQ6_K, GetQ6_K, SetQ6_K},
    {GgmlType::kIQ4_NL, 32, 16, 0, Iq4Book(), GridIQ4_NL, GetIQ4_NL, SetIQ4_NL},
    {GgmlType::kIQ4_XS, 256, 16, 0, Iq4Book(), GridIQ4_XS, GetIQ4_XS, SetIQ4_XS},
    {GgmlType::kTQ2_0, 256, 3, -1, nullptr, GridTQ2_0, GetTQ2_0, SetTQ2_0},
    {GgmlType::kNF4G32, 32, 16, 0, Bnb4Levels(Bnb4Type::kNf4).data(), GridNF4<32>, GetNF4<32>, SetNF4<32>},
    {GgmlType::kNF4G64, 64, 16, 0, Bnb4Levels(Bnb4Type::kNf4).data(), GridNF4<64>, GetNF4<64>, SetNF4<64>},
  };
  return table;
}

}  // namespace

int GgmlGrid::Nearest(float x, float a, float b) const {
  int k;
  if (a == 0 || !std::isfinite(a)) {
    k = 0;  // every code stands for b: take the level nearest 0
    for (int i = 1; i < n_levels; ++i)
      if (std::fabs(Level(i)) < std::fabs(Level(k))) k = i;
    return k;
  }
  const float t = (x - b) / a;
  if (book == nullptr) {
    const float r = std::nearbyint(t) - static_cast<float>(level_min);
    k = !(r >= 0) ? 0 : r >= static_cast<float>(n_levels - 1) ? n_levels - 1 : static_cast<int>(r);
  } else {
    k = static_cast<int>(std::lower_bound(book, book + n_levels, t) - book);
    k = std::min(k, n_levels - 1);
  }
  // Settle near-ties on the values actually stored.
  auto dist = [&](int i) { return std::fabs(Value(a, b, Level(i)) - x); };
  int best = k;
  for (int i = std::max(0, k - 1); i <= std::min(n_levels - 1, k + 1); ++i)
    if (dist(i) < dist(best) || (dist(i) == dist(best) && i < best)) best = i;
  return best;
}

const GgmlGrid* GgmlGridFor(GgmlType type) {
  for (const GgmlGrid& g : Table())
    if (g.type == type) return &g;
  return nullptr;
}

std::span<const GgmlGrid> AllGgmlGrids() { return Table(); }

}  // namespace lowbit

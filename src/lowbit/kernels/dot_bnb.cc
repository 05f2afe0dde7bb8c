// The scalar reference dot product of bitsandbytes' 4-bit types (NF4G32 .. FP4G64, numeric/bnb.h)
// against F32 activations: the truth the SIMD kernels (dot_bnb_x86.inc) equal bit for bit.
//
// The float order (the contract of every table): 16 lane sums acc[j] = 0. Per block, p[j] = 0, then
// for k = 0 .. G/16 - 1 in order p[j] = fma(level[q(16 k + j)], x[16 k + j], p[j]); then
// acc[j] = fma(d, p[j], acc[j]). Each fma rounds once (std::fma here, vfmadd in the SIMD tables:
// every x86 table that has these kernels has FMA). A separate multiply and add cost a third more
// instructions in a kernel that is bound by them, not by memory (docs/PERFORMANCE.md, "NF4 decode
// with fused multiply-adds"). At the end s8[j] = acc[j] + acc[j + 8], s4[j] = s8[j] + s8[j + 4],
// s2[j] = s4[j] + s4[j + 2], s2[0] + s2[1].
//
// Activations stay float (the type's ActTypeFor is F32), as bitsandbytes multiplies dequantized
// weights with 16/32-bit activations: the level table is not integer, so an 8-bit activation would
// add an error bitsandbytes does not have. The paired types NF4G64x2 / FP4G64x2 take int16
// activations instead (kernels/dot_bnb.h: their quantizer and reference are here too).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "lowbit/kernels/dot.h"
#include "lowbit/kernels/dot_bnb.h"
#include "lowbit/numeric/bnb.h"

namespace lowbit {

const std::array<int16_t, 16>& Bnb4Levels16(Bnb4Type t) {
  static const auto make = [](Bnb4Type type) {
    std::array<int16_t, 16> out{};
    for (size_t i = 0; i < 16; ++i) out[i] = static_cast<int16_t>(std::nearbyint(Bnb4Levels(type)[i] * static_cast<float>(kBnbAct16Max)));
    return out;
  };
  static const std::array<int16_t, 16> nf4 = make(Bnb4Type::kNf4), fp4 = make(Bnb4Type::kFp4);
  return t == Bnb4Type::kNf4 ? nf4 : fp4;
}

namespace {

// Elements [e0, e1) of a row of n (whole blocks of 64), element i's value value(i).
template <typename Value>
void QuantizeBnbAct16Blocks(Value value, uint8_t* out, int64_t n, int64_t e0, int64_t e1) {
  auto* q = reinterpret_cast<int16_t*>(out);
  auto* scales = reinterpret_cast<float*>(out + BnbAct16ScalesOffset(n));
  constexpr auto kMax = static_cast<float>(kBnbAct16Max);
  alignas(64) float v[64];
  for (int64_t b0 = e0; b0 < e1; b0 += 64) {
    float amax = 0.0f;
    for (int r = 0; r < 64; ++r) {
      v[r] = value(b0 + r);
      const float a = std::fabs(v[r]);
      amax = a > amax || std::isnan(a) ? a : amax;  // a NaN stays (no later a > NaN)
    }
    float id;
    scales[b0 / 64] = BnbAct16Scale(amax, &id);
    int16_t* qu = q + b0 / 128 * 128 + 2 * (b0 / 64 % 2);
    for (int r = 0; r < 64; ++r) {  // element r = 16 k + 2 i + h goes to 32 k + 4 i + h (+ 2 for block 1)
      const float t = (v[r] * id + kBnbAct16Round) - kBnbAct16Round;
      // A non-finite activation (a broken model) codes as 0; its block's scale is then inf or NaN and
      // carries it into the result, with no float-to-int conversion out of range.
      qu[32 * (r / 16) + 4 * (r % 16 / 2) + r % 2] = static_cast<int16_t>(std::fabs(t) <= kMax ? t : 0.0f);
    }
  }
}

}  // namespace

void QuantizeBnbAct16(const float* x, const int32_t* x_map, uint8_t* out, int64_t n) {
  QuantizeBnbAct16Blocks([&](int64_t i) { return x_map == nullptr ? x[i] : x_map[i] < 0 ? 0.0f : x[x_map[i]]; }, out, n, 0, n);
}

void QuantizeBnbAct16Unit(const float* xu, uint8_t* out, int64_t n, int64_t u) {
  QuantizeBnbAct16Blocks([&](int64_t i) { return xu[i - 128 * u]; }, out, n, 128 * u, 128 * u + 128);
}

namespace {

float Reduce16(const float* acc) {
  float s8[8], s4[4], s2[2];
  for (int j = 0; j < 8; ++j) s8[j] = acc[j] + acc[j + 8];
  for (int j = 0; j < 4; ++j) s4[j] = s8[j] + s8[j + 4];
  for (int j = 0; j < 2; ++j) s2[j] = s4[j] + s4[j + 2];
  return s2[0] + s2[1];
}

template <int G, Bnb4Type kT>
float DotBnb(const uint8_t* row, const uint8_t* act, int64_t n) {
  const std::array<float, 16>& levels = Bnb4Levels(kT);
  const auto* x = reinterpret_cast<const float*>(act);
  float acc[16] = {};
  for (int64_t b = 0; b < n / G; ++b, x += G) {
    BlockNF<G> blk;
    std::memcpy(&blk, row + b * static_cast<int64_t>(sizeof(BlockNF<G>)), sizeof(blk));
    float p[16] = {};
    for (int k = 0; k < G / 16; ++k) {
      for (int j = 0; j < 16; ++j) {
        const float w = levels[static_cast<size_t>(NfCode(blk, 16 * k + j))];
        p[j] = std::fma(w, x[16 * k + j], p[j]);
      }
    }
    for (int j = 0; j < 16; ++j) acc[j] = std::fma(blk.d, p[j], acc[j]);
  }
  return Reduce16(acc);
}

// The paired types against int16 activations (kernels/dot_bnb.h).
template <Bnb4Type kT>
float DotBnbPair(const uint8_t* row, const uint8_t* act, int64_t n) {
  const std::array<int16_t, 16>& levels = Bnb4Levels16(kT);
  const auto* q = reinterpret_cast<const int16_t*>(act);
  const auto* scales = reinterpret_cast<const float*>(act + BnbAct16ScalesOffset(n));
  float acc[16] = {};
  for (int64_t u = 0; u < n / 128; ++u) {
    BlockNFx2 blk;
    std::memcpy(&blk, row + u * static_cast<int64_t>(sizeof(blk)), sizeof(blk));
    const int16_t* qu = q + 128 * u;
    for (int j = 0; j < 16; ++j) {
      int32_t isum = 0;
      for (int k = 0; k < 4; ++k) {
        for (int h = 0; h < 2; ++h) {
          const int w = 2 * j + h;  // the code word; its nibble k, activation vector k
          isum += int32_t{levels[static_cast<size_t>(NfNibble(blk, 4 * w + k))]} * qu[32 * k + w];
        }
      }
      acc[j] = std::fma(static_cast<float>(isum) * blk.d[j % 2], scales[2 * u + j % 2], acc[j]);
    }
  }
  return Reduce16(acc);
}

}  // namespace

namespace internal {
void FillRefBnbKernels(DotKernels* k) {
  using enum GgmlType;
  k->dot[static_cast<uint32_t>(kNF4G32)] = DotBnb<32, Bnb4Type::kNf4>;
  k->dot[static_cast<uint32_t>(kNF4G64)] = DotBnb<64, Bnb4Type::kNf4>;
  k->dot[static_cast<uint32_t>(kFP4G32)] = DotBnb<32, Bnb4Type::kFp4>;
  k->dot[static_cast<uint32_t>(kFP4G64)] = DotBnb<64, Bnb4Type::kFp4>;
  k->dot[static_cast<uint32_t>(kNF4G64x2)] = DotBnbPair<Bnb4Type::kNf4>;
  k->dot[static_cast<uint32_t>(kFP4G64x2)] = DotBnbPair<Bnb4Type::kFp4>;
  k->quant_bnb16 = [](const float* x, void* dst, int64_t n, int32_t*) { QuantizeBnbAct16(x, nullptr, static_cast<uint8_t*>(dst), n); };
}
}  // namespace internal

}  // namespace lowbit

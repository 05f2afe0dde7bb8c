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
// add an error bitsandbytes does not have.
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "lowbit/kernels/dot.h"
#include "lowbit/numeric/bnb.h"

namespace lowbit {
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

}  // namespace

namespace internal {
void FillRefBnbKernels(DotKernels* k) {
  using enum GgmlType;
  k->dot[static_cast<uint32_t>(kNF4G32)] = DotBnb<32, Bnb4Type::kNf4>;
  k->dot[static_cast<uint32_t>(kNF4G64)] = DotBnb<64, Bnb4Type::kNf4>;
  k->dot[static_cast<uint32_t>(kFP4G32)] = DotBnb<32, Bnb4Type::kFp4>;
  k->dot[static_cast<uint32_t>(kFP4G64)] = DotBnb<64, Bnb4Type::kFp4>;
}
}  // namespace internal

}  // namespace lowbit

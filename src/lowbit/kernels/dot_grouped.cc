// The scalar reference dot product of the grouped-integer types (W4G32 .. W8G128) against Q8_0
// activations: the truth every SIMD kernel of these types equals bit for bit (dot_grouped_x86.inc).
// Its float order is the contract written in kernels/dot.h.
#include <cstdint>

#include "lowbit/kernels/dot.h"
#include "lowbit/numeric/blocks.h"
#include "lowbit/numeric/half.h"

namespace lowbit {
namespace {

template <int kBits, int G>
float DotGrouped(const uint8_t* row, const uint8_t* act, int64_t n) {
  using B = BlockWG<kBits, G>;
  const auto* w = reinterpret_cast<const B*>(row);
  const auto* y = reinterpret_cast<const BlockQ8_0*>(act);
  float acc = 0.0f;
  for (int64_t g = 0; g < n / G; ++g) {
    float gs = 0.0f;
    for (int s = 0; s < G / kQK; ++s) {
      const BlockQ8_0& a = y[g * (G / kQK) + s];
      int32_t isum = 0, asum = 0;
      for (int j = 0; j < kQK; ++j) {
        isum += GroupedCode(w[g], kQK * s + j) * a.qs[j];
        asum += a.qs[j];
      }
      gs += static_cast<float>(isum - int32_t{w[g].z} * asum) * Fp16ToFp32(a.d);
    }
    acc += Fp16ToFp32(w[g].d) * gs;
  }
  return acc;
}

}  // namespace

namespace internal {
void FillRefGroupedKernels(DotKernels* k) {
  using enum GgmlType;
  k->dot[static_cast<uint32_t>(kW4G32)] = DotGrouped<4, 32>;
  k->dot[static_cast<uint32_t>(kW4G64)] = DotGrouped<4, 64>;
  k->dot[static_cast<uint32_t>(kW4G128)] = DotGrouped<4, 128>;
  k->dot[static_cast<uint32_t>(kW8G32)] = DotGrouped<8, 32>;
  k->dot[static_cast<uint32_t>(kW8G64)] = DotGrouped<8, 64>;
  k->dot[static_cast<uint32_t>(kW8G128)] = DotGrouped<8, 128>;
}
}  // namespace internal

}  // namespace lowbit

#include "lowbit/kernels/dot.h"

#include <vector>

#include "lowbit/kernels/matvec.h"
#include "lowbit/numeric/dequant.h"

namespace lowbit {
namespace {

template <GgmlType T>
float RefRow(const uint8_t* row, const float* x, int64_t n) {
  if constexpr (T == GgmlType::kF32) {
    return Dot(reinterpret_cast<const float*>(row), x, n);
  } else {
    thread_local std::vector<float> tmp;  // grows once per thread
    if (tmp.size() < static_cast<size_t>(n)) tmp.resize(static_cast<size_t>(n));
    ToFloatFor(T)(row, tmp.data(), n);
    return Dot(tmp.data(), x, n);
  }
}

template <uint32_t... Ids>
void FillRef(DotKernels* k, std::integer_sequence<uint32_t, Ids...>) {
  ((k->row[Ids] = FindGgmlType(Ids) && ToFloatFor(static_cast<GgmlType>(Ids)) ? &RefRow<static_cast<GgmlType>(Ids)> : nullptr), ...);
}

}  // namespace

namespace internal {
void FillRefDotKernels(DotKernels* k) { FillRef(k, std::make_integer_sequence<uint32_t, kMaxTypeId>{}); }
}  // namespace internal

const DotKernels& DotKernelsFor(Isa isa) {
  static const DotKernels ref = [] {
    DotKernels k;
    internal::FillRefDotKernels(&k);
    return k;
  }();
  static const DotKernels avx2 = [] {
    DotKernels k = ref;
    internal::FillAvx2DotKernels(&k);
    return k;
  }();
  return isa >= Isa::kAvx2 ? avx2 : ref;  // AVX-512 uses the AVX2 table until it has its own
}

const DotKernels& ActiveDotKernels() {
  static const DotKernels& k = DotKernelsFor(ActiveIsa());
  return k;
}

}  // namespace lowbit

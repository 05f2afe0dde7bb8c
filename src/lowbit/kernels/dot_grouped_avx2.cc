// AVX2 + FMA + F16C kernels of the grouped-integer types (dot_grouped_x86.inc).
#include "lowbit/kernels/dot_grouped_x86.inc"

namespace lowbit::internal {
void FillAvx2GroupedKernels(DotKernels* k) { FillX86GroupedKernels(k); }
}  // namespace lowbit::internal

// AVX2 + FMA + F16C row dot products (kernels in dot_x86.inc).
#include "lowbit/kernels/dot_x86.inc"

namespace lowbit::internal {
void FillAvx2DotKernels(DotKernels* k) { FillX86DotKernels(k); }
}  // namespace lowbit::internal

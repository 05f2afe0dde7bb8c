// AVX2 kernels of LLM.int8 (dot_int8_x86.inc): maddubs + madd for the int8 sums.
#include "lowbit/kernels/dot_int8_x86.inc"

namespace lowbit::internal {
void FillAvx2Int8Kernels(DotKernels* k) { FillX86Int8Kernels(k); }
}  // namespace lowbit::internal

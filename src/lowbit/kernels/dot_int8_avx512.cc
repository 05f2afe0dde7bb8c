// LLM.int8 kernels (dot_int8_x86.inc) with VNNI: vpdpbusd for the int8 sums.
#define LOWBIT_VNNI 1
#include "lowbit/kernels/dot_int8_x86.inc"

namespace lowbit::internal {
void FillAvx512Int8Kernels(DotKernels* k) { FillX86Int8Kernels(k); }
}  // namespace lowbit::internal

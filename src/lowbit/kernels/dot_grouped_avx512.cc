// The grouped-integer types' kernels (dot_grouped_x86.inc) with VNNI: vpdpbusd for the code sums,
// vpdpwssd for the zero points' term, and the 512-bit prefill GEMM on pairs of tokens.
#define LOWBIT_VNNI 1
#include "lowbit/kernels/dot_grouped_x86.inc"

namespace lowbit::internal {
void FillAvx512GroupedKernels(DotKernels* k) { FillX86GroupedKernels(k); }
}  // namespace lowbit::internal

// AVX-512 table: the 256-bit kernels of dot_x86.inc with VNNI (via AVX512-VL): vpdpbusd for the
// u8 x s8 block sums, vpdpwssd for the i16 scale multiply-accumulate of the K-quants.
// Results are bit-identical to the AVX2 table (exact integer sums either way).
#define LOWBIT_VNNI 1
#include "lowbit/kernels/dot_x86.inc"

namespace lowbit::internal {
void FillAvx512DotKernels(DotKernels* k) { FillX86DotKernels(k); }
}  // namespace lowbit::internal

// LLM.int8 kernels (dot_int8_x86.inc) with VNNI: vpdpbusd for the int8 sums, 512-bit 8-row decode.
#define LOWBIT_VNNI 1
// GCC 12's AVX-512 headers build results from _mm512_undefined_*() (GCC bug 105593), which
// -Wuninitialized reports inside the headers for the 512-bit to 256-bit cast here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#include "lowbit/kernels/dot_int8_x86.inc"
#pragma GCC diagnostic pop

namespace lowbit::internal {
void FillAvx512Int8Kernels(DotKernels* k) { FillX86Int8Kernels(k); }
}  // namespace lowbit::internal

// AVX2 kernels of bitsandbytes' 4-bit types (dot_bnb_x86.inc).
#include <cstring>

#include "lowbit/kernels/dot_bnb_x86.inc"

namespace lowbit::internal {
void FillAvx2BnbKernels(DotKernels* k) { FillX86BnbKernels(k); }
}  // namespace lowbit::internal

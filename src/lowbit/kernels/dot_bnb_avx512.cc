// AVX-512 kernels of bitsandbytes' 4-bit types (dot_bnb_x86.inc): one vpermps looks up 16 levels.
#include <cstring>

#define LOWBIT_BNB_512 1
#define LOWBIT_VNNI 1  // ZeroIdiom512, NextRows8Prefetch
// GCC 12's AVX-512 headers build results from _mm512_undefined_*() (GCC bug 105593), which
// -Wuninitialized reports inside the headers for vpmovzxbd / vshuff32x4 here; the flag set of the
// AVX-512 units silences only the "maybe" form.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#include "lowbit/kernels/dot_bnb_x86.inc"
#pragma GCC diagnostic pop

namespace lowbit::internal {
void FillAvx512BnbKernels(DotKernels* k) { FillX86BnbKernels(k); }
}  // namespace lowbit::internal

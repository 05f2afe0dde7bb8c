// Round-to-nearest reference quantizers whose output the formats define: ggml's reference bytes
// for Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 (weights) and Q8_0, Q8_1, Q8_K (the activation side of dot
// products, which live in kernels/act_quant.h). Checked byte for byte against ../shared/golden/quant-golden.gguf.
#pragma once

#include <cstdint>

#include "lowbit/kernels/act_quant.h"  // Q8_0/Q8_1/Q8_K, NearestInt, SignedAbsMax

namespace lowbit {

// Each converts `n` floats (a multiple of the block size) into blocks at `dst`.
void QuantizeQ4_0Ref(const float* x, void* dst, int64_t n);
void QuantizeQ4_1Ref(const float* x, void* dst, int64_t n);
void QuantizeQ5_0Ref(const float* x, void* dst, int64_t n);
void QuantizeQ5_1Ref(const float* x, void* dst, int64_t n);

}  // namespace lowbit

// The quantizer table: from_float for every weight type lowbit writes.
//
// A quantizer converts one row of `n` floats (a multiple of the block size) into blocks. `imatrix`
// is the row's per-column importance (length n, non-negative) or nullptr; quantizers that search
// minimize the importance-weighted squared error with it, the plain squared error without it.
// Round-to-nearest types ignore it (their bytes are fixed by the format; see rtn.h).
#pragma once

#include <cstdint>

#include "lowbit/numeric/ggml_type.h"

namespace lowbit {

using FromFloatFn = void (*)(const float* x, void* dst, int64_t n, const float* imatrix);

// nullptr for types lowbit cannot write yet (the IQ lattice types, Q8_K, ...).
FromFloatFn FromFloatFor(GgmlType type);
// True when the quantizer uses an importance matrix.
bool UsesImatrix(GgmlType type);

// The searching quantizers, one row at a time.
void QuantizeQ2_K(const float* x, void* dst, int64_t n, const float* imatrix);
void QuantizeQ3_K(const float* x, void* dst, int64_t n, const float* imatrix);
void QuantizeQ4_K(const float* x, void* dst, int64_t n, const float* imatrix);
void QuantizeQ5_K(const float* x, void* dst, int64_t n, const float* imatrix);
void QuantizeQ6_K(const float* x, void* dst, int64_t n, const float* imatrix);
void QuantizeIQ4_NL(const float* x, void* dst, int64_t n, const float* imatrix);
void QuantizeIQ4_XS(const float* x, void* dst, int64_t n, const float* imatrix);
void QuantizeTQ1_0(const float* x, void* dst, int64_t n, const float* imatrix);
void QuantizeTQ2_0(const float* x, void* dst, int64_t n, const float* imatrix);

}  // namespace lowbit

#include "lowbit/quant/quantize.h"

#include <vector>

#include "lowbit/numeric/bnb.h"
#include "lowbit/numeric/convert.h"
#include "lowbit/quant/bnb_quant.h"
#include "lowbit/quant/rtn.h"

namespace lowbit {
namespace {

template <void (*F)(const float*, void*, int64_t)>
void Rtn(const float* x, void* dst, int64_t n, const float*) {
  F(x, dst, n);
}

void F32(const float* x, void* dst, int64_t n, const float*) { __builtin_memcpy(dst, x, static_cast<size_t>(n) * 4); }
void F16(const float* x, void* dst, int64_t n, const float*) { ConvertF32ToF16(x, static_cast<uint16_t*>(dst), n); }
void BF16(const float* x, void* dst, int64_t n, const float*) { ConvertF32ToBf16(x, static_cast<uint16_t*>(dst), n); }

// bitsandbytes' NF4 in lowbit's internal rows (NF4G32 / NF4G64): each block's scale searched for the
// least (importance-weighted) error (QuantizeBnb4Searched: a valid bitsandbytes block, its stored
// absmax being the scale), then the codes in the row layout. GPTQ's grid for a bitsandbytes folder,
// which calls it once per block: the staging buffers are kept per thread.
template <GgmlType T>
void NF4Row(const float* x, void* dst, int64_t n, const float* imatrix) {
  const int64_t g = TypeInfo(T).block_size;
  thread_local std::vector<uint8_t> packed;
  thread_local std::vector<float> absmax;
  packed.resize(static_cast<size_t>(n / 2));
  absmax.resize(static_cast<size_t>(n / g));
  QuantizeBnb4Searched(Bnb4Type::kNf4, x, n, g, imatrix, n, packed.data(), absmax.data());
  PackBnb4Rows(T, packed.data(), absmax, 1, n, g, static_cast<uint8_t*>(dst));
}

}  // namespace

FromFloatFn FromFloatFor(GgmlType type) {
  switch (type) {
    case GgmlType::kF32: return F32;
    case GgmlType::kF16: return F16;
    case GgmlType::kBF16: return BF16;
    case GgmlType::kQ4_0: return Rtn<QuantizeQ4_0Ref>;
    case GgmlType::kQ4_1: return Rtn<QuantizeQ4_1Ref>;
    case GgmlType::kQ5_0: return Rtn<QuantizeQ5_0Ref>;
    case GgmlType::kQ5_1: return Rtn<QuantizeQ5_1Ref>;
    case GgmlType::kQ8_0: return Rtn<QuantizeQ8_0Ref>;
    case GgmlType::kQ2_K: return QuantizeQ2_K;
    case GgmlType::kQ3_K: return QuantizeQ3_K;
    case GgmlType::kQ4_K: return QuantizeQ4_K;
    case GgmlType::kQ5_K: return QuantizeQ5_K;
    case GgmlType::kQ6_K: return QuantizeQ6_K;
    case GgmlType::kIQ4_NL: return QuantizeIQ4_NL;
    case GgmlType::kIQ4_XS: return QuantizeIQ4_XS;
    case GgmlType::kTQ1_0: return QuantizeTQ1_0;
    case GgmlType::kTQ2_0: return QuantizeTQ2_0;
    case GgmlType::kNF4G32: return NF4Row<GgmlType::kNF4G32>;
    case GgmlType::kNF4G64: return NF4Row<GgmlType::kNF4G64>;
    default: return nullptr;
  }
}

bool UsesImatrix(GgmlType type) {
  switch (type) {
    case GgmlType::kQ2_K: case GgmlType::kQ3_K: case GgmlType::kQ4_K: case GgmlType::kQ5_K:
    case GgmlType::kQ6_K: case GgmlType::kIQ4_NL: case GgmlType::kIQ4_XS: case GgmlType::kTQ1_0:
    case GgmlType::kTQ2_0: case GgmlType::kNF4G32: case GgmlType::kNF4G64:
      return true;
    default:
      return false;
  }
}

}  // namespace lowbit

#include "lowbit/pipeline/row_convert.h"

#include <cstring>
#include <vector>

#include "lowbit/base/check.h"
#include "lowbit/numeric/convert.h"

namespace lowbit {
namespace {

void ToF32(GgmlType src, const uint8_t* in, float* out, size_t n) {
  switch (src) {
    case GgmlType::kF32: std::memcpy(out, in, n * 4); break;
    case GgmlType::kF16: ConvertF16ToF32(reinterpret_cast<const uint16_t*>(in), out, n); break;
    case GgmlType::kBF16: ConvertBf16ToF32(reinterpret_cast<const uint16_t*>(in), out, n); break;
    default: LOWBIT_CHECK_MSG(false, "ToF32 of a non-float type");
  }
}

void FromF32(GgmlType dst, const float* in, uint8_t* out, size_t n) {
  switch (dst) {
    case GgmlType::kF32: std::memcpy(out, in, n * 4); break;
    case GgmlType::kF16: ConvertF32ToF16(in, reinterpret_cast<uint16_t*>(out), n); break;
    case GgmlType::kBF16: ConvertF32ToBf16(in, reinterpret_cast<uint16_t*>(out), n); break;
    default: LOWBIT_CHECK_MSG(false, "FromF32 to a non-float type");
  }
}

}  // namespace

Status ConvertTensorRows(const PlannedTensor& t, GgmlType out, std::span<uint8_t> dst) {
  const uint64_t row_len = t.dims.empty() ? 1 : t.dims[0];
  const uint64_t src_row_bytes = RowBytes(t.source_type, row_len).value_or(0);
  const uint64_t dst_row_bytes = RowBytes(out, row_len).value_or(0);
  if (dst_row_bytes == 0 || src_row_bytes == 0) return OkStatus();  // empty tensor
  const uint64_t n_rows = dst.size() / dst_row_bytes;
  if (src_row_bytes * n_rows != t.data.size()) {
    return Errorf("source holds {} bytes, expected {} rows of {} bytes", t.data.size(), n_rows, src_row_bytes);
  }
  if (t.unpermute_heads > 0 && n_rows % (2ull * t.unpermute_heads) != 0) {
    return Errorf("{} rows cannot be split into {} heads of even size", n_rows, t.unpermute_heads);
  }
  if (t.source_type != out && !(t.source_type == GgmlType::kF32 || t.source_type == GgmlType::kF16 ||
                                t.source_type == GgmlType::kBF16)) {
    return Errorf("cannot convert {} to {}", TypeInfo(t.source_type).name, TypeInfo(out).name);
  }
  std::vector<float> row(t.source_type == out ? 0 : row_len);
  for (uint64_t r = 0; r < n_rows; ++r) {
    const uint64_t src_r = t.unpermute_heads ? UnpermuteSourceRow(r, n_rows, t.unpermute_heads) : r;
    const uint8_t* in = t.data.data() + src_r * src_row_bytes;
    uint8_t* o = dst.data() + r * dst_row_bytes;
    if (t.source_type == out) {
      std::memcpy(o, in, dst_row_bytes);
    } else {
      ToF32(t.source_type, in, row.data(), row_len);
      FromF32(out, row.data(), o, row_len);
    }
  }
  return OkStatus();
}

}  // namespace lowbit

// GGUF metadata values and tensor descriptions, shared by the reader and the writer.
//
// GGUF v3 layout (little-endian; ../shared/FORMATS.md B1):
//   header   : "GGUF" | version u32 | tensor_count u64 | metadata_kv_count u64
//   kv       : key (u64 len + UTF-8) | value_type u32 | value
//   array    : element type u32 | count u64 | elements (arrays may nest)
//   tensor   : name (string) | n_dims u32 (<= 4) | dims u64[n_dims] (dims[0] fastest) | type u32 |
//              offset u64 (from the start of the data section, a multiple of the alignment)
//   then zero padding to `general.alignment` (default 32) and the tensor data, each tensor padded.
// A GgufValue keeps the exact type and bits it was read with, so writing it back gives the same bytes.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/numeric/ggml_type.h"

namespace lowbit {

enum class GgufValueType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};

std::string_view GgufValueTypeName(GgufValueType t);
bool IsValidGgufValueType(uint32_t t);
// Bytes of a scalar of this type (0 for string and array).
uint32_t GgufScalarSize(GgufValueType t);

inline constexpr uint32_t kGgufDefaultAlignment = 32;
inline constexpr uint32_t kGgufMaxDims = 4;
inline constexpr size_t kGgufMaxTensorName = 63;  // ggml's GGML_MAX_NAME is 64 including the NUL

class GgufValue {
 public:
  GgufValue() = default;
  static GgufValue U8(uint8_t v) { return Scalar(GgufValueType::kU8, v); }
  static GgufValue I8(int8_t v) { return Scalar(GgufValueType::kI8, static_cast<uint8_t>(v)); }
  static GgufValue U16(uint16_t v) { return Scalar(GgufValueType::kU16, v); }
  static GgufValue I16(int16_t v) { return Scalar(GgufValueType::kI16, static_cast<uint16_t>(v)); }
  static GgufValue U32(uint32_t v) { return Scalar(GgufValueType::kU32, v); }
  static GgufValue I32(int32_t v) { return Scalar(GgufValueType::kI32, static_cast<uint32_t>(v)); }
  static GgufValue U64(uint64_t v) { return Scalar(GgufValueType::kU64, v); }
  static GgufValue I64(int64_t v) { return Scalar(GgufValueType::kI64, static_cast<uint64_t>(v)); }
  static GgufValue F32(float v);
  static GgufValue F64(double v);
  static GgufValue Bool(bool v) { return Scalar(GgufValueType::kBool, v ? 1 : 0); }
  static GgufValue String(std::string s);
  static GgufValue Array(GgufValueType element_type, std::vector<GgufValue> elements);
  // Raw constructor used by the reader: `raw` holds the little-endian bits zero-extended.
  static GgufValue Scalar(GgufValueType t, uint64_t raw);

  GgufValueType type() const { return type_; }
  bool is_array() const { return type_ == GgufValueType::kArray; }
  GgufValueType element_type() const { return element_type_; }
  const std::vector<GgufValue>& elements() const { return elements_; }
  uint64_t raw() const { return raw_; }

  // Integer value of any integer or bool type; nullopt otherwise or if negative (AsUInt).
  std::optional<int64_t> AsInt() const;
  std::optional<uint64_t> AsUInt() const;
  // Float value of f32/f64 or any integer type.
  std::optional<double> AsFloat() const;
  const std::string* AsString() const { return type_ == GgufValueType::kString ? &str_ : nullptr; }

  // Human-readable, arrays shortened to `max_elements` ("[1, 2, 3, ... 512 items]").
  std::string ToString(size_t max_elements = 8) const;

  bool operator==(const GgufValue& o) const;

 private:
  GgufValueType type_ = GgufValueType::kU8;
  GgufValueType element_type_ = GgufValueType::kU8;
  uint64_t raw_ = 0;
  std::string str_;
  std::vector<GgufValue> elements_;
};

struct GgufKv {
  std::string key;
  GgufValue value;
};

struct GgufTensorInfo {
  std::string name;
  GgmlType type = GgmlType::kF32;
  uint32_t n_dims = 0;
  std::array<uint64_t, kGgufMaxDims> dims = {1, 1, 1, 1};  // dims[0] fastest (ggml ne[0])
  uint64_t offset = 0;                                     // from the start of the data section
  uint64_t n_elements = 0;
  uint64_t n_bytes = 0;
  const uint8_t* data = nullptr;  // into the mapped file; never copied

  std::string ShapeString() const;  // "[64, 512]" in GGUF order (dims[0] first)
  uint64_t rows() const { return dims[0] == 0 ? 0 : n_elements / dims[0]; }
};

// Number of elements and bytes of a tensor, with overflow and block-size checks. Returns an error
// message (empty on success) that names the failing rule.
std::string ComputeTensorSize(GgmlType type, uint32_t n_dims, const uint64_t* dims,
                              uint64_t* n_elements, uint64_t* n_bytes);

inline uint64_t AlignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace lowbit

#include "lowbit/formats/gguf.h"

#include <fmt/format.h>

#include <cstring>
#include <limits>

namespace lowbit {

std::string_view GgufValueTypeName(GgufValueType t) {
  static constexpr std::string_view kNames[] = {"u8",  "i8",     "u16",   "i16", "u32", "i32", "f32",
                                                "bool", "string", "array", "u64", "i64", "f64"};
  auto i = static_cast<uint32_t>(t);
  return i < std::size(kNames) ? kNames[i] : "?";
}

bool IsValidGgufValueType(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::kF64); }

uint32_t GgufScalarSize(GgufValueType t) {
  switch (t) {
    case GgufValueType::kU8: case GgufValueType::kI8: case GgufValueType::kBool: return 1;
    case GgufValueType::kU16: case GgufValueType::kI16: return 2;
    case GgufValueType::kU32: case GgufValueType::kI32: case GgufValueType::kF32: return 4;
    case GgufValueType::kU64: case GgufValueType::kI64: case GgufValueType::kF64: return 8;
    case GgufValueType::kString: case GgufValueType::kArray: return 0;
  }
  return 0;
}

GgufValue GgufValue::Scalar(GgufValueType t, uint64_t raw) {
  GgufValue v;
  v.type_ = t;
  v.raw_ = raw;
  return v;
}

GgufValue GgufValue::F32(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return Scalar(GgufValueType::kF32, u);
}

GgufValue GgufValue::F64(double d) {
  uint64_t u;
  std::memcpy(&u, &d, 8);
  return Scalar(GgufValueType::kF64, u);
}

GgufValue GgufValue::String(std::string s) {
  GgufValue v;
  v.type_ = GgufValueType::kString;
  v.str_ = std::move(s);
  return v;
}

GgufValue GgufValue::Array(GgufValueType element_type, std::vector<GgufValue> elements) {
  GgufValue v;
  v.type_ = GgufValueType::kArray;
  v.element_type_ = element_type;
  v.elements_ = std::move(elements);
  return v;
}

std::optional<int64_t> GgufValue::AsInt() const {
  switch (type_) {
    case GgufValueType::kU8: case GgufValueType::kU16: case GgufValueType::kU32:
    case GgufValueType::kBool:
      return static_cast<int64_t>(raw_);
    case GgufValueType::kU64:
      if (raw_ > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
      return static_cast<int64_t>(raw_);
    case GgufValueType::kI8: return static_cast<int8_t>(raw_);
    case GgufValueType::kI16: return static_cast<int16_t>(raw_);
    case GgufValueType::kI32: return static_cast<int32_t>(raw_);
    case GgufValueType::kI64: return static_cast<int64_t>(raw_);
    default: return std::nullopt;
  }
}

std::optional<uint64_t> GgufValue::AsUInt() const {
  if (type_ == GgufValueType::kU64) return raw_;
  auto i = AsInt();
  if (!i || *i < 0) return std::nullopt;
  return static_cast<uint64_t>(*i);
}

std::optional<double> GgufValue::AsFloat() const {
  if (type_ == GgufValueType::kF32) {
    float f;
    uint32_t u = static_cast<uint32_t>(raw_);
    std::memcpy(&f, &u, 4);
    return f;
  }
  if (type_ == GgufValueType::kF64) {
    double d;
    std::memcpy(&d, &raw_, 8);
    return d;
  }
  if (type_ == GgufValueType::kU64) return static_cast<double>(raw_);
  auto i = AsInt();
  if (i) return static_cast<double>(*i);
  return std::nullopt;
}

std::string GgufValue::ToString(size_t max_elements) const {
  switch (type_) {
    case GgufValueType::kString: {
      std::string s = "\"";
      for (char c : str_.size() > 120 ? str_.substr(0, 117) + "..." : str_) {
        if (c == '\n') s += "\\n";
        else if (c == '"') s += "\\\"";
        else if (static_cast<unsigned char>(c) < 0x20) s += fmt::format("\\x{:02x}", c);
        else s += c;
      }
      return s + "\"";
    }
    case GgufValueType::kArray: {
      std::string s = "[";
      for (size_t i = 0; i < elements_.size() && i < max_elements; ++i) {
        if (i) s += ", ";
        s += elements_[i].ToString(max_elements);
      }
      if (elements_.size() > max_elements) {
        s += fmt::format(", ... {} {} items", elements_.size(), GgufValueTypeName(element_type_));
      }
      return s + "]";
    }
    case GgufValueType::kBool: return raw_ ? "true" : "false";
    case GgufValueType::kF32: case GgufValueType::kF64: return fmt::format("{}", *AsFloat());
    case GgufValueType::kU64: return fmt::format("{}", raw_);
    default: return fmt::format("{}", *AsInt());
  }
}

bool GgufValue::operator==(const GgufValue& o) const {
  return type_ == o.type_ && raw_ == o.raw_ && str_ == o.str_ && element_type_ == o.element_type_ &&
         elements_ == o.elements_;
}

std::string GgufTensorInfo::ShapeString() const {
  std::string s = "[";
  for (uint32_t i = 0; i < n_dims; ++i) s += fmt::format("{}{}", i ? ", " : "", dims[i]);
  return s + "]";
}

std::string ComputeTensorSize(GgmlType type, uint32_t n_dims, const uint64_t* dims,
                              uint64_t* n_elements, uint64_t* n_bytes) {
  const GgmlTypeInfo& info = TypeInfo(type);
  uint64_t n = 1;
  for (uint32_t i = 0; i < n_dims; ++i) {
    if (dims[i] > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return fmt::format("dimension {} is {}, larger than 2^63-1", i, dims[i]);
    }
    if (dims[i] != 0 && n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / dims[i]) {
      return "the product of the dimensions overflows 64 bits";
    }
    n *= dims[i];
  }
  const uint64_t row = n_dims > 0 ? dims[0] : 1;
  if (row % info.block_size != 0) {
    return fmt::format("row length {} (dims[0]) is not a multiple of the {} block size {}", row,
                       info.name, info.block_size);
  }
  const uint64_t blocks = n / info.block_size;
  if (blocks != 0 && info.block_bytes > std::numeric_limits<uint64_t>::max() / blocks) {
    return "the tensor's byte size overflows 64 bits";
  }
  *n_elements = n;
  *n_bytes = blocks * info.block_bytes;
  return {};
}

}  // namespace lowbit

#include "lowbit/formats/gguf_reader.h"

#include <algorithm>
#include <numeric>

#include "lowbit/formats/byte_reader.h"

namespace lowbit {
namespace {

constexpr int kMaxArrayNesting = 8;
constexpr uint64_t kMaxKeyLength = 65535;

Status ReadString(ByteReader& r, std::string* out, std::string_view what) {
  uint64_t len = 0;
  const uint64_t at = r.offset();
  LOWBIT_RETURN_IF_ERROR(r.Read(&len, what));
  if (len > r.remaining()) {
    return r.ErrorAt(at, "{} has length {} but only {} bytes are left in the file", what, len,
                     r.remaining());
  }
  std::span<const uint8_t> bytes;
  LOWBIT_RETURN_IF_ERROR(r.ReadBytes(len, &bytes, what));
  out->assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return OkStatus();
}

// Smallest encoding of one value of type t, used to bound array counts before allocating.
uint64_t MinEncodedSize(GgufValueType t) {
  if (t == GgufValueType::kString) return 8;
  if (t == GgufValueType::kArray) return 12;
  return GgufScalarSize(t);
}

Status ReadValue(ByteReader& r, GgufValueType type, int depth, const std::string& key,
                 GgufValue* out) {
  if (type == GgufValueType::kString) {
    std::string s;
    LOWBIT_RETURN_IF_ERROR(ReadString(r, &s, fmt::format("string value of '{}'", key)));
    *out = GgufValue::String(std::move(s));
    return OkStatus();
  }
  if (type == GgufValueType::kArray) {
    if (depth >= kMaxArrayNesting) {
      return r.ErrorHere("arrays in '{}' nest deeper than {} levels; the file is corrupt", key,
                         kMaxArrayNesting);
    }
    uint32_t et = 0;
    uint64_t count = 0;
    const uint64_t at = r.offset();
    LOWBIT_RETURN_IF_ERROR(r.Read(&et, "array element type"));
    if (!IsValidGgufValueType(et)) {
      return r.ErrorAt(at, "array '{}' has unknown element type {} (valid: 0-12)", key, et);
    }
    LOWBIT_RETURN_IF_ERROR(r.Read(&count, "array element count"));
    const auto elem = static_cast<GgufValueType>(et);
    if (count > r.remaining() / MinEncodedSize(elem)) {
      return r.ErrorAt(at, "array '{}' claims {} {} elements, more than the {} bytes left can hold",
                       key, count, GgufValueTypeName(elem), r.remaining());
    }
    std::vector<GgufValue> elems(count);
    for (uint64_t i = 0; i < count; ++i) {
      LOWBIT_RETURN_IF_ERROR(ReadValue(r, elem, depth + 1, key, &elems[i]));
    }
    *out = GgufValue::Array(elem, std::move(elems));
    return OkStatus();
  }
  const uint32_t size = GgufScalarSize(type);
  LOWBIT_RETURN_IF_ERROR(r.Need(size, fmt::format("value of '{}'", key)));
  uint64_t raw = 0;
  std::memcpy(&raw, r.here(), size);
  if (type == GgufValueType::kBool && raw > 1) {
    return r.ErrorHere("bool value of '{}' is {}, must be 0 or 1", key, raw);
  }
  LOWBIT_RETURN_IF_ERROR(r.Skip(size, "value"));
  *out = GgufValue::Scalar(type, raw);
  return OkStatus();
}

}  // namespace

Expected<GgufFile> GgufFile::Open(const std::string& path, Residency residency) {
  LOWBIT_ASSIGN_OR_RETURN(MappedFile map, MappedFile::Load(path, Residency::kMapped));
  GgufFile f;
  f.name_ = path;
  f.in_memory_ = ChooseResidency(residency, map.size()) == Residency::kInMemory;
  f.map_ = std::move(map);
  LOWBIT_RETURN_IF_ERROR(f.ParseAll(f.map_.bytes(), f.map_.size(), f.map_.data()));
  return f;
}

Expected<GgufFile> GgufFile::FromHeader(std::span<const uint8_t> header, uint64_t file_size, const std::string& name) {
  LOWBIT_ASSIGN_OR_RETURN(MappedFile map, MappedFile::Reserve(name, header, file_size));
  GgufFile f;
  f.name_ = name;
  f.map_ = std::move(map);
  LOWBIT_RETURN_IF_ERROR(f.ParseAll(f.map_.bytes().first(header.size()), file_size, f.map_.data()));
  return f;
}

Expected<GgufFile> GgufFile::Parse(std::span<const uint8_t> bytes, const std::string& name) {
  GgufFile f;
  f.name_ = name;
  LOWBIT_RETURN_IF_ERROR(f.ParseAll(bytes, bytes.size(), bytes.data()));
  return f;
}

Expected<GgufFile> GgufFile::Assemble(std::string name, std::vector<GgufKv> kvs, std::vector<GgufTensorInfo> tensors,
                                      std::vector<std::shared_ptr<const void>> owners) {
  GgufFile f;
  f.name_ = std::move(name);
  f.assembled_ = true;
  f.owners_ = std::move(owners);
  f.kvs_ = std::move(kvs);
  for (size_t i = 0; i < f.kvs_.size(); ++i) {
    if (!f.kv_index_.emplace(f.kvs_[i].key, i).second) return Errorf("{}: metadata key '{}' appears twice", f.name_, f.kvs_[i].key);
  }
  f.tensors_ = std::move(tensors);
  for (size_t i = 0; i < f.tensors_.size(); ++i) {
    GgufTensorInfo& t = f.tensors_[i];
    if (FindGgmlType(static_cast<uint32_t>(t.type)) == nullptr || t.n_dims > kGgufMaxDims) {
      return Errorf("{}: tensor '{}' has an unknown type or too many dimensions", f.name_, t.name);
    }
    std::string err = ComputeTensorSize(t.type, t.n_dims, t.dims.data(), &t.n_elements, &t.n_bytes);
    if (!err.empty()) return Errorf("{}: tensor '{}' {}: {}", f.name_, t.name, t.ShapeString(), err);
    if (t.data == nullptr && t.n_bytes > 0) return Errorf("{}: tensor '{}' has no data", f.name_, t.name);
    if (!f.tensor_index_.emplace(t.name, i).second) return Errorf("{}: tensor name '{}' appears twice", f.name_, t.name);
    f.file_size_ += t.n_bytes;
  }
  return f;
}

Expected<GgufFile> GgufFile::ParseHeader(std::span<const uint8_t> header, uint64_t file_size, const std::string& name) {
  if (header.size() > file_size) return Errorf("{}: a header of {} bytes cannot belong to a file of {}", name, header.size(), file_size);
  GgufFile f;
  f.name_ = name;
  LOWBIT_RETURN_IF_ERROR(f.ParseAll(header, file_size, nullptr));
  return f;
}

Status GgufFile::ParseAll(std::span<const uint8_t> bytes, uint64_t file_size, const uint8_t* base) {
  ByteReader r(bytes, name_);
  file_size_ = bytes.size();
  uint8_t magic[4];
  LOWBIT_RETURN_IF_ERROR(r.Read(&magic, "magic"));
  if (std::memcmp(magic, "GGUF", 4) != 0) {
    if (std::memcmp(magic, "FUGG", 4) == 0) {
      return r.ErrorAt(0, "byte-swapped magic: big-endian GGUF files are not supported");
    }
    return r.ErrorAt(0, "not a GGUF file (magic is {:02x} {:02x} {:02x} {:02x}, expected 'GGUF')",
                     magic[0], magic[1], magic[2], magic[3]);
  }
  LOWBIT_RETURN_IF_ERROR(r.Read(&version_, "version"));
  if (version_ != 2 && version_ != 3) {
    if ((version_ & 0xffff) == 0 && version_ != 0) {
      return r.ErrorAt(4, "version field reads {:#x}: a big-endian GGUF file, not supported", version_);
    }
    return r.ErrorAt(4, "GGUF version {} is not supported (lowbit reads versions 2 and 3{})", version_,
                     version_ == 1 ? "; re-convert the model with a current tool" : "");
  }
  uint64_t n_tensors = 0, n_kv = 0;
  LOWBIT_RETURN_IF_ERROR(r.Read(&n_tensors, "tensor count"));
  LOWBIT_RETURN_IF_ERROR(r.Read(&n_kv, "metadata count"));
  // Each tensor info takes at least 24 bytes, each key/value at least 13: reject hostile counts
  // before reserving anything.
  if (n_kv > r.remaining() / 13) {
    return r.ErrorAt(16, "metadata count {} cannot fit in the {} bytes of the file", n_kv, file_size_);
  }
  if (n_tensors > r.remaining() / 24) {
    return r.ErrorAt(8, "tensor count {} cannot fit in the {} bytes of the file", n_tensors,
                     file_size_);
  }
  LOWBIT_RETURN_IF_ERROR(ParseKvs(r, n_kv));
  LOWBIT_RETURN_IF_ERROR(ParseTensorInfos(r, n_tensors));
  header_end_ = r.offset();
  data_offset_ = AlignUp(header_end_, alignment_);
  file_size_ = file_size;  // a header alone (ParseHeader) is checked against the whole file's size
  return ValidateLayout(base);
}

Status GgufFile::ParseKvs(ByteReader& r, uint64_t n_kv) {
  kvs_.reserve(n_kv);
  kv_index_.reserve(n_kv);
  for (uint64_t i = 0; i < n_kv; ++i) {
    GgufKv kv;
    const uint64_t at = r.offset();
    LOWBIT_RETURN_IF_ERROR(ReadString(r, &kv.key, fmt::format("key of metadata entry {}", i)));
    if (kv.key.size() > kMaxKeyLength) {
      return r.ErrorAt(at, "metadata key {} is {} bytes long (limit {})", i, kv.key.size(), kMaxKeyLength);
    }
    uint32_t type = 0;
    const uint64_t type_at = r.offset();
    LOWBIT_RETURN_IF_ERROR(r.Read(&type, "value type"));
    if (!IsValidGgufValueType(type)) {
      return r.ErrorAt(type_at, "metadata '{}' has unknown value type {} (valid: 0-12)", kv.key, type);
    }
    LOWBIT_RETURN_IF_ERROR(ReadValue(r, static_cast<GgufValueType>(type), 0, kv.key, &kv.value));
    if (!kv_index_.emplace(kv.key, kvs_.size()).second) {
      return r.ErrorAt(at, "metadata key '{}' appears twice", kv.key);
    }
    if (kv.key == "general.alignment") {
      auto a = kv.value.AsUInt();
      if (kv.value.type() != GgufValueType::kU32 || !a || *a == 0 || (*a & (*a - 1)) != 0) {
        return r.ErrorAt(at, "general.alignment must be a u32 power of two, found {} {}",
                         GgufValueTypeName(kv.value.type()), kv.value.ToString());
      }
      alignment_ = static_cast<uint32_t>(*a);
    }
    kvs_.push_back(std::move(kv));
  }
  return OkStatus();
}

Status GgufFile::ParseTensorInfos(ByteReader& r, uint64_t n_tensors) {
  tensors_.resize(n_tensors);
  tensor_index_.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo& t = tensors_[i];
    const uint64_t at = r.offset();
    LOWBIT_RETURN_IF_ERROR(ReadString(r, &t.name, fmt::format("name of tensor {}", i)));
    if (t.name.size() > kGgufMaxTensorName) {
      return r.ErrorAt(at, "tensor {} name is {} bytes long; ggml allows at most {}", i,
                       t.name.size(), kGgufMaxTensorName);
    }
    LOWBIT_RETURN_IF_ERROR(r.Read(&t.n_dims, "n_dims"));
    if (t.n_dims > kGgufMaxDims) {
      return r.ErrorAt(at, "tensor '{}' has {} dimensions; GGUF allows at most {}", t.name, t.n_dims,
                       kGgufMaxDims);
    }
    for (uint32_t d = 0; d < t.n_dims; ++d) LOWBIT_RETURN_IF_ERROR(r.Read(&t.dims[d], "dimension"));
    uint32_t type_id = 0;
    const uint64_t type_at = r.offset();
    LOWBIT_RETURN_IF_ERROR(r.Read(&type_id, "tensor type"));
    if (FindGgmlType(type_id) == nullptr) {
      std::string_view removed = RemovedGgmlTypeName(type_id);
      if (!removed.empty()) {
        return r.ErrorAt(type_at, "tensor '{}' uses type {} ({}), which ggml removed; re-quantize "
                         "the model from F16/F32", t.name, type_id, removed);
      }
      return r.ErrorAt(type_at, "tensor '{}' has unknown ggml type id {}", t.name, type_id);
    }
    if (FindGgmlType(type_id)->internal) {
      return r.ErrorAt(type_at, "tensor '{}' has type id {} ({}), one of lowbit's in-memory types, which no GGUF file may hold",
                       t.name, type_id, FindGgmlType(type_id)->name);
    }
    t.type = static_cast<GgmlType>(type_id);
    LOWBIT_RETURN_IF_ERROR(r.Read(&t.offset, "tensor data offset"));
    std::string err = ComputeTensorSize(t.type, t.n_dims, t.dims.data(), &t.n_elements, &t.n_bytes);
    if (!err.empty()) return r.ErrorAt(at, "tensor '{}' {}: {}", t.name, t.ShapeString(), err);
    if (t.offset % alignment_ != 0) {
      return r.ErrorAt(at, "tensor '{}' data offset {} is not a multiple of the alignment {}", t.name,
                       t.offset, alignment_);
    }
    if (!tensor_index_.emplace(t.name, i).second) {
      return r.ErrorAt(at, "tensor name '{}' appears twice", t.name);
    }
  }
  return OkStatus();
}

Status GgufFile::ValidateLayout(const uint8_t* base) {
  if (tensors_.empty()) return OkStatus();
  if (data_offset_ > file_size_) {
    return Errorf("{}: the tensor data section would start at byte {}, past the end of the file "
                  "({} bytes); the file is truncated", name_, data_offset_, file_size_);
  }
  const uint64_t data_size = file_size_ - data_offset_;
  std::vector<size_t> order(tensors_.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return tensors_[a].offset < tensors_[b].offset; });
  for (size_t k = 0; k < order.size(); ++k) {
    GgufTensorInfo& t = tensors_[order[k]];
    if (t.offset > data_size || t.n_bytes > data_size - t.offset) {
      return Errorf("{}: tensor '{}' ({} bytes at data offset {}) extends past the end of the file "
                    "(data section holds {} bytes); the file is truncated", name_, t.name,
                    t.n_bytes, t.offset, data_size);
    }
    if (k + 1 < order.size()) {
      const GgufTensorInfo& next = tensors_[order[k + 1]];
      if (t.offset + t.n_bytes > next.offset) {
        return Errorf("{}: tensors '{}' and '{}' overlap in the data section (offsets {} and {})",
                      name_, t.name, next.name, t.offset, next.offset);
      }
    }
    t.data = base == nullptr ? nullptr : base + data_offset_ + t.offset;
  }
  return OkStatus();
}

const GgufValue* GgufFile::Find(std::string_view key) const {
  auto it = kv_index_.find(std::string(key));
  return it == kv_index_.end() ? nullptr : &kvs_[it->second].value;
}

const GgufTensorInfo* GgufFile::FindTensor(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

Expected<uint64_t> GgufFile::GetUInt(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Errorf("{}: metadata key '{}' is missing", name_, key);
  auto u = v->AsUInt();
  if (!u) return Errorf("{}: metadata '{}' should be a non-negative integer, found {} {}", name_, key,
                        GgufValueTypeName(v->type()), v->ToString());
  return *u;
}

Expected<double> GgufFile::GetFloat(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Errorf("{}: metadata key '{}' is missing", name_, key);
  auto f = v->AsFloat();
  if (!f) return Errorf("{}: metadata '{}' should be a number, found {}", name_, key,
                        GgufValueTypeName(v->type()));
  return *f;
}

Expected<std::string> GgufFile::GetString(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Errorf("{}: metadata key '{}' is missing", name_, key);
  if (v->AsString() == nullptr) {
    return Errorf("{}: metadata '{}' should be a string, found {}", name_, key,
                  GgufValueTypeName(v->type()));
  }
  return *v->AsString();
}

}  // namespace lowbit

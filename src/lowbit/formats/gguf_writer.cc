#include "lowbit/formats/gguf_writer.h"

#include <cstring>

#include "lowbit/base/aligned_buffer.h"
#include "lowbit/base/atomic_file.h"
#include "lowbit/formats/gguf_reader.h"

namespace lowbit {
namespace {

void PutBytes(std::vector<uint8_t>& out, const void* p, size_t n) {
  const size_t at = out.size();
  out.resize(at + n);
  if (n > 0) std::memcpy(out.data() + at, p, n);
}

template <typename T>
void Put(std::vector<uint8_t>& out, T v) {
  PutBytes(out, &v, sizeof(T));
}

void PutString(std::vector<uint8_t>& out, const std::string& s) {
  Put<uint64_t>(out, s.size());
  PutBytes(out, s.data(), s.size());
}

void PutValue(std::vector<uint8_t>& out, const GgufValue& v) {
  switch (v.type()) {
    case GgufValueType::kString: PutString(out, *v.AsString()); return;
    case GgufValueType::kArray:
      Put<uint32_t>(out, static_cast<uint32_t>(v.element_type()));
      Put<uint64_t>(out, v.elements().size());
      for (const GgufValue& e : v.elements()) PutValue(out, e);
      return;
    default: {
      const uint64_t raw = v.raw();
      PutBytes(out, &raw, GgufScalarSize(v.type()));
    }
  }
}

}  // namespace

void GgufWriter::SetKv(const std::string& key, GgufValue value) {
  for (GgufKv& kv : kvs_) {
    if (kv.key == key) {
      kv.value = std::move(value);
      return;
    }
  }
  kvs_.push_back({key, std::move(value)});
}

void GgufWriter::RemoveKv(const std::string& key) {
  std::erase_if(kvs_, [&](const GgufKv& kv) { return kv.key == key; });
}

const GgufValue* GgufWriter::FindKv(const std::string& key) const {
  for (const GgufKv& kv : kvs_) {
    if (kv.key == key) return &kv.value;
  }
  return nullptr;
}

Status GgufWriter::AddTensor(const std::string& name, GgmlType type, std::span<const uint64_t> dims,
                             Producer producer) {
  if (name.empty() || name.size() > kGgufMaxTensorName) {
    return Errorf("tensor name '{}' must be 1 to {} bytes long", name, kGgufMaxTensorName);
  }
  if (dims.size() > kGgufMaxDims) {
    return Errorf("tensor '{}' has {} dimensions; GGUF allows at most {}", name, dims.size(), kGgufMaxDims);
  }
  for (const Tensor& t : tensors_) {
    if (t.info.name == name) return Errorf("tensor '{}' added twice", name);
  }
  if (TypeInfo(type).internal) {
    return Errorf("tensor '{}': {} is one of lowbit's in-memory types, which GGUF cannot hold; write a ggml type", name, TypeInfo(type).name);
  }
  Tensor t;
  t.info.name = name;
  t.info.type = type;
  t.info.n_dims = static_cast<uint32_t>(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) t.info.dims[i] = dims[i];
  std::string err = ComputeTensorSize(type, t.info.n_dims, t.info.dims.data(), &t.info.n_elements,
                                      &t.info.n_bytes);
  if (!err.empty()) return Errorf("tensor '{}' {} as {}: {}", name, t.info.ShapeString(), TypeInfo(type).name, err);
  t.producer = std::move(producer);
  tensors_.push_back(std::move(t));
  return OkStatus();
}

Expected<GgufWriter> GgufWriter::CopyOf(const GgufFile& src) {
  GgufWriter w;
  for (const GgufKv& kv : src.kvs()) w.kvs_.push_back(kv);
  w.pad_empty_data_ = !src.tensors().empty() || src.file_size() > src.header_end();
  for (const GgufTensorInfo& t : src.tensors()) {
    const uint8_t* data = t.data;
    LOWBIT_RETURN_IF_ERROR(w.AddTensor(
        t.name, t.type, std::span<const uint64_t>(t.dims.data(), t.n_dims),
        [data](std::span<uint8_t> out) {
          std::memcpy(out.data(), data, out.size());
          return OkStatus();
        }));
  }
  return w;
}

uint32_t GgufWriter::Alignment() const {
  const GgufValue* a = FindKv("general.alignment");
  if (a != nullptr) {
    auto v = a->AsUInt();
    if (v && *v > 0 && (*v & (*v - 1)) == 0 && *v <= (1u << 30)) return static_cast<uint32_t>(*v);
  }
  return kGgufDefaultAlignment;
}

std::vector<uint8_t> GgufWriter::SerializeHeader(uint64_t* data_offset) const {
  const uint64_t align = Alignment();
  std::vector<uint8_t> out;
  PutBytes(out, "GGUF", 4);
  Put<uint32_t>(out, 3);
  Put<uint64_t>(out, tensors_.size());
  Put<uint64_t>(out, kvs_.size());
  for (const GgufKv& kv : kvs_) {
    PutString(out, kv.key);
    Put<uint32_t>(out, static_cast<uint32_t>(kv.value.type()));
    PutValue(out, kv.value);
  }
  uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    PutString(out, t.info.name);
    Put<uint32_t>(out, t.info.n_dims);
    for (uint32_t d = 0; d < t.info.n_dims; ++d) Put<uint64_t>(out, t.info.dims[d]);
    Put<uint32_t>(out, static_cast<uint32_t>(t.info.type));
    Put<uint64_t>(out, offset);
    offset += AlignUp(t.info.n_bytes, align);
  }
  *data_offset = tensors_.empty() && !pad_empty_data_ ? out.size() : AlignUp(out.size(), align);
  out.resize(*data_offset, 0);
  return out;
}

std::vector<uint8_t> GgufWriter::HeaderBytes() const {
  uint64_t data_offset = 0;
  return SerializeHeader(&data_offset);
}

uint64_t GgufWriter::FileSize() const {
  uint64_t data_offset = 0;
  SerializeHeader(&data_offset);
  uint64_t total = data_offset;
  for (const Tensor& t : tensors_) total += AlignUp(t.info.n_bytes, Alignment());
  return total;
}

Status GgufWriter::Write(const std::string& path, bool show_progress) const {
  uint64_t data_offset = 0;
  std::vector<uint8_t> header = SerializeHeader(&data_offset);
  const uint64_t align = Alignment();
  uint64_t total_bytes = 0;
  size_t max_bytes = 0;
  for (const Tensor& t : tensors_) {
    total_bytes += t.info.n_bytes;
    max_bytes = std::max<size_t>(max_bytes, t.info.n_bytes);
  }
  LOWBIT_ASSIGN_OR_RETURN(AtomicFile file, AtomicFile::Create(path));
  LOWBIT_RETURN_IF_ERROR(file.Write(header));
  AlignedBuffer buffer(max_bytes);
  Progress progress("writing " + path, tensors_.size(), total_bytes, show_progress);
  uint64_t done = 0;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const Tensor& t = tensors_[i];
    std::span<uint8_t> out(buffer.data(), t.info.n_bytes);
    Status s = t.producer(out);
    if (!s.ok()) return s.WithContext(fmt::format("{}: tensor '{}'", path, t.info.name));
    LOWBIT_RETURN_IF_ERROR(file.Write(out));
    LOWBIT_RETURN_IF_ERROR(file.WriteZeros(AlignUp(t.info.n_bytes, align) - t.info.n_bytes));
    done += t.info.n_bytes;
    progress.Update(i + 1, done, t.info.name);
  }
  progress.Finish();
  return file.Commit();
}

}  // namespace lowbit

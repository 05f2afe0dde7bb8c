// GgufFile: a validated, zero-copy view of a GGUF v2/v3 file.
//
// Open() maps the file and checks everything before anything is used: magic and version, every
// count against the bytes left (so no hostile count can cause an unbounded allocation), string
// lengths, value types, array nesting, duplicate keys and tensor names, n_dims <= 4, dimension
// products, known type ids, row lengths that fit the type's block, `general.alignment`, offsets
// aligned and inside the file, and tensors not overlapping. Tensor data is never read or copied on
// open: GgufTensorInfo::data points into the mapping. The inference tools may instead ask for the
// file read into memory (Residency, base/mapped_file.h); the checks are the same.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lowbit/base/mapped_file.h"
#include "lowbit/base/status.h"
#include "lowbit/formats/gguf.h"

namespace lowbit {

class GgufFile {
 public:
  static Expected<GgufFile> Open(const std::string& path, Residency residency = Residency::kMapped);
  // Whether the bytes are a copy in memory (MappedFile::Read) rather than the file's mapping.
  bool in_memory() const { return map_.copied(); }
  // Parses bytes owned by the caller (they must outlive the result). `name` is used in messages.
  static Expected<GgufFile> Parse(std::span<const uint8_t> bytes, const std::string& name);
  // A file of `file_size` bytes known only by its header (metadata and tensor infos, e.g.
  // GgufWriter::HeaderBytes of a file not yet written): checked as Open checks a file, with tensor
  // views pointing into reserved address space that must not be read (MappedFile::Reserve). For
  // planning: loading a model's shapes and sizes from it reads no tensor data.
  static Expected<GgufFile> FromHeader(std::span<const uint8_t> header, uint64_t file_size, const std::string& name);

  uint32_t version() const { return version_; }
  const std::vector<GgufKv>& kvs() const { return kvs_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  // End of the tensor infos (before alignment padding).
  uint64_t header_end() const { return header_end_; }
  uint64_t file_size() const { return file_size_; }
  const std::string& name() const { return name_; }

  const GgufValue* Find(std::string_view key) const;
  const GgufTensorInfo* FindTensor(std::string_view name) const;

  // Typed lookups whose errors name the file and the key.
  Expected<uint64_t> GetUInt(std::string_view key) const;
  Expected<double> GetFloat(std::string_view key) const;
  Expected<std::string> GetString(std::string_view key) const;

  // The mapping behind the views (empty when built with Parse()).
  const MappedFile& file() const { return map_; }

 private:
  // The header is read from the first `readable` bytes (FromHeader: only those exist).
  Status ParseAll(std::span<const uint8_t> bytes, size_t readable = SIZE_MAX);
  Status ParseKvs(class ByteReader& r, uint64_t n_kv);
  Status ParseTensorInfos(class ByteReader& r, uint64_t n_tensors);
  Status ValidateLayout(std::span<const uint8_t> bytes);

  MappedFile map_;
  std::string name_;
  uint32_t version_ = 0;
  uint32_t alignment_ = kGgufDefaultAlignment;
  uint64_t data_offset_ = 0;
  uint64_t header_end_ = 0;
  uint64_t file_size_ = 0;
  std::vector<GgufKv> kvs_;
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string, size_t> kv_index_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace lowbit

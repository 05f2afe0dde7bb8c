// GgufFile: a validated, zero-copy view of a GGUF v2/v3 file.
//
// Open() maps the file and checks everything before anything is used: magic and version, every
// count against the bytes left (so no hostile count can cause an unbounded allocation), string
// lengths, value types, array nesting, duplicate keys and tensor names, n_dims <= 4, dimension
// products, known type ids, row lengths that fit the type's block, `general.alignment`, offsets
// aligned and inside the file, and tensors not overlapping. Tensor data is never read or copied on
// open: GgufTensorInfo::data points into the mapping. The inference tools may ask for the model's
// weights in memory (Residency, base/mapped_file.h; in_memory()); the file is mapped all the same.
#pragma once

#include <memory>
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
  // Whether the model's weights are to be held in memory (Residency::kInMemory, or kAuto's choice):
  // the file itself stays mapped, and LlamaModel::Load reads the weights into memory of its own, in
  // 2 MiB pages where the kernel has them, rows laid out for the kernels (model/shard.h,
  // ImageRowStep). False: the model views the weights in the mapping.
  bool in_memory() const { return in_memory_; }
  // Parses bytes owned by the caller (they must outlive the result). `name` is used in messages.
  static Expected<GgufFile> Parse(std::span<const uint8_t> bytes, const std::string& name);
  // A model assembled in memory (e.g. a quantized Hugging Face folder repacked for inference): each
  // tensor's `data` points into memory that `owners` keep alive (or into another file's mapping the
  // caller keeps); offsets mean nothing. Sizes are computed here; names must be unique. Lowbit's
  // internal weight types, which no file may hold, are allowed.
  static Expected<GgufFile> Assemble(std::string name, std::vector<GgufKv> kvs, std::vector<GgufTensorInfo> tensors,
                                     std::vector<std::shared_ptr<const void>> owners);
  // True for Assemble()'d models.
  bool assembled() const { return assembled_; }
  // Only the header of a file of `file_size` bytes whose tensor data is elsewhere (a tensor-parallel
  // rank that receives its weights from rank 0): checked as Parse checks a whole file, with every
  // tensor's `data` null.
  static Expected<GgufFile> ParseHeader(std::span<const uint8_t> header, uint64_t file_size, const std::string& name);
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
  // `bytes` holds at least the header; base: the file's first byte, or null when only the header is here.
  Status ParseAll(std::span<const uint8_t> bytes, uint64_t file_size, const uint8_t* base);
  Status ParseKvs(class ByteReader& r, uint64_t n_kv);
  Status ParseTensorInfos(class ByteReader& r, uint64_t n_tensors);
  Status ValidateLayout(const uint8_t* base);  // base: the file's first byte, or null (header only)

  MappedFile map_;
  std::vector<std::shared_ptr<const void>> owners_;  // Assemble(): what the tensors point into
  bool assembled_ = false;
  bool in_memory_ = false;
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

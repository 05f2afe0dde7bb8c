// safetensors: read and write Hugging Face's tensor container.
//
// Layout: header_size u64 LE | header JSON (header_size bytes, UTF-8, may be space-padded) | data.
// Header: {"__metadata__": {str: str}, NAME: {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}}
// with offsets relative to the start of the data section. Validation: header size against the file,
// JSON well-formed, known dtype, shape * dtype size == e - b, offsets inside the data section,
// tensors not overlapping, no duplicate names. Tensor data is a view into the mapped file.
// Sharded models: `model.safetensors.index.json` ({"weight_map": {NAME: FILE}}) over several files.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lowbit/base/mapped_file.h"
#include "lowbit/base/status.h"

namespace lowbit {

enum class StDtype { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU64, kU32, kU16, kU8, kBool,
                     kF8E4M3, kF8E5M2 };

std::string_view StDtypeName(StDtype d);
bool ParseStDtype(std::string_view name, StDtype* out);
uint32_t StDtypeSize(StDtype d);

struct StTensor {
  std::string name;
  StDtype dtype = StDtype::kF32;
  std::vector<uint64_t> shape;  // row-major, outermost first (numpy order)
  std::span<const uint8_t> data;
  uint64_t n_elements() const;
};

class SafetensorsFile {
 public:
  static Expected<SafetensorsFile> Open(const std::string& path);
  static Expected<SafetensorsFile> Parse(std::span<const uint8_t> bytes, const std::string& name);

  const std::vector<StTensor>& tensors() const { return tensors_; }
  const StTensor* Find(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& name() const { return name_; }
  uint64_t file_size() const { return file_size_; }

  // The mapping behind the views (empty when built with Parse()).
  const MappedFile& file() const { return map_; }

 private:
  Status ParseAll(std::span<const uint8_t> bytes);
  MappedFile map_;
  std::string name_;
  uint64_t file_size_ = 0;
  std::vector<StTensor> tensors_;
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// One model's tensors over one or more safetensors files.
class SafetensorsModel {
 public:
  // `path`: a .safetensors file, a model.safetensors.index.json, or a folder holding either.
  static Expected<SafetensorsModel> Open(const std::string& path);

  const StTensor* Find(std::string_view name) const;
  // All tensors, in file order (files in the order the index first names them).
  std::vector<const StTensor*> tensors() const;
  const std::vector<std::string>& files() const { return files_; }
  std::vector<const MappedFile*> mappings() const;

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::vector<std::string> files_;
  std::unordered_map<std::string, const StTensor*> by_name_;
};

// Parses the JSON of a model.safetensors.index.json (exposed for the fuzzer): tensor -> file name.
Expected<std::vector<std::pair<std::string, std::string>>> ParseSafetensorsIndex(
    std::string_view json, const std::string& name);

class SafetensorsWriter {
 public:
  using Producer = std::function<Status(std::span<uint8_t> out)>;
  void SetMetadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  Status Add(const std::string& name, StDtype dtype, std::vector<uint64_t> shape, Producer producer);
  Status Write(const std::string& path) const;

 private:
  struct Entry {
    std::string name;
    StDtype dtype;
    std::vector<uint64_t> shape;
    uint64_t bytes;
    Producer producer;
  };
  std::map<std::string, std::string> metadata_;
  std::vector<Entry> entries_;
};

}  // namespace lowbit

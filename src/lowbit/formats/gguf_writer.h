// GgufWriter: builds a GGUF v3 file and streams it to disk.
//
// Metadata and tensor descriptions are collected first (they are small); Write() then writes the
// header to a temporary file and asks each tensor's producer for its bytes, one tensor at a time
// into one reused buffer, so writing needs no more memory than the largest tensor. Offsets are laid
// out in order with `general.alignment` (default 32) padding, as ggml and gguf-py do, so reading a
// GGUF and writing it back with the same metadata and tensors reproduces the file byte for byte.
// The file is renamed into place only when complete.
#pragma once

#include <functional>
#include <span>
#include <string>
#include <vector>

#include "lowbit/base/progress.h"
#include "lowbit/base/status.h"
#include "lowbit/formats/gguf.h"

namespace lowbit {

class GgufFile;

class GgufWriter {
 public:
  // Fills `out` (exactly the tensor's byte size) with the tensor's data.
  using Producer = std::function<Status(std::span<uint8_t> out)>;

  // Adds or replaces (in place, keeping its position) a metadata entry.
  void SetKv(const std::string& key, GgufValue value);
  void RemoveKv(const std::string& key);
  const std::vector<GgufKv>& kvs() const { return kvs_; }
  const GgufValue* FindKv(const std::string& key) const;

  // Validates name, shape and type (row length a multiple of the block size).
  Status AddTensor(const std::string& name, GgmlType type, std::span<const uint64_t> dims,
                   Producer producer);
  size_t tensor_count() const { return tensors_.size(); }
  const GgufTensorInfo& tensor_info(size_t i) const { return tensors_[i].info; }

  // Convenience: every metadata entry of `src`, and every tensor copied from its mapping.
  static Expected<GgufWriter> CopyOf(const GgufFile& src);

  // With no tensors, whether the header is still padded to the alignment (gguf-py and current
  // ggml pad; older llama.cpp vocab files do not). CopyOf() keeps what the source did.
  void set_pad_empty_data(bool pad) { pad_empty_data_ = pad; }

  // Total bytes the file will have.
  uint64_t FileSize() const;
  // The file's first bytes: header, metadata, tensor infos and the padding up to the data
  // (GgufFile::FromHeader reads a model's plan from them without any tensor data).
  std::vector<uint8_t> HeaderBytes() const;
  Status Write(const std::string& path, bool show_progress = false) const;

 private:
  struct Tensor {
    GgufTensorInfo info;
    Producer producer;
  };
  uint32_t Alignment() const;
  std::vector<uint8_t> SerializeHeader(uint64_t* data_offset) const;

  std::vector<GgufKv> kvs_;
  std::vector<Tensor> tensors_;
  bool pad_empty_data_ = true;
};

}  // namespace lowbit

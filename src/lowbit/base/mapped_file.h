// MappedFile: a read-only, memory-mapped view of a whole file. Tensor data is read through this
// mapping and never copied on load. Move-only; unmaps on destruction. An empty file maps to an
// empty span.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "lowbit/base/status.h"

namespace lowbit {

class MappedFile {
 public:
  static Expected<MappedFile> Open(const std::string& path);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

  // Tells the kernel the pages wholly inside `range` will not be read again soon, so they stop
  // counting as resident (they are re-read from the page cache if touched). Ranges outside this
  // mapping are ignored. Used by streaming conversion to keep memory at about one tensor.
  void DropPages(std::span<const uint8_t> range) const;

 private:
  void Reset();
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace lowbit

// AtomicFile: write a file under a temporary name beside the target and rename it into place only
// when Commit() succeeds. A failed or abandoned write removes the temporary file, so a reader never
// sees a half-written output. Buffered; every write error is reported with the path.
#pragma once

#include <cstdint>
#include <cstdio>
#include <span>
#include <string>

#include "lowbit/base/status.h"

namespace lowbit {

class AtomicFile {
 public:
  static Expected<AtomicFile> Create(const std::string& path);

  AtomicFile(AtomicFile&& o) noexcept;
  AtomicFile& operator=(AtomicFile&&) = delete;
  AtomicFile(const AtomicFile&) = delete;
  ~AtomicFile();  // discards (removes the temporary) unless committed

  Status Write(const void* data, size_t n);
  Status Write(std::span<const uint8_t> bytes) { return Write(bytes.data(), bytes.size()); }
  Status WriteZeros(size_t n);
  uint64_t offset() const { return offset_; }
  Status Commit();
  void Discard();

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_path_; }

 private:
  AtomicFile(std::string path, std::string temp, FILE* f)
      : path_(std::move(path)), temp_path_(std::move(temp)), file_(f) {}
  std::string path_;
  std::string temp_path_;
  FILE* file_ = nullptr;
  uint64_t offset_ = 0;
};

}  // namespace lowbit

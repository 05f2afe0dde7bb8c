// PageBuffer: anonymous memory for weights a process holds itself (a tensor-parallel rank's shard),
// 2 MiB-aligned and advised MADV_HUGEPAGE as MappedFile::Read does (the decode kernels stream 2 MiB
// pages faster: docs/DESIGN-NOTES.md, "Where the weights live"), zero-filled, made read-only with
// Protect() once written. Move-only; unmapped on destruction.
//
// PreadAll reads exactly `bytes` bytes at `offset` of a descriptor (EINTR and short reads retried).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "lowbit/base/status.h"

namespace lowbit {

class PageBuffer {
 public:
  // `what` names the memory in the error message ("rank 1's shard of model.gguf").
  static Expected<PageBuffer> Allocate(size_t bytes, const std::string& what);

  PageBuffer() = default;
  PageBuffer(PageBuffer&& o) noexcept;
  PageBuffer& operator=(PageBuffer&& o) noexcept;
  PageBuffer(const PageBuffer&) = delete;
  PageBuffer& operator=(const PageBuffer&) = delete;
  ~PageBuffer();

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  void Protect();  // read-only from now on

 private:
  void Reset();
  uint8_t* data_ = nullptr;
  size_t size_ = 0, map_len_ = 0;
};

// Reads bytes [offset, offset + bytes) of the open file `fd` into dst; `path` names it in errors.
Status PreadAll(int fd, const std::string& path, uint64_t offset, uint64_t bytes, uint8_t* dst);

}  // namespace lowbit

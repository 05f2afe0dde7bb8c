// Anonymous memory in 2 MiB pages where the kernel has transparent huge pages (2 MiB-aligned,
// advised MADV_HUGEPAGE), for weights built in memory that the decode kernels stream: the same pages
// MappedFile::Read gives a file read into memory (docs/PERFORMANCE.md: fewer TLB misses when a
// token streams the whole model). Zero-filled, writable, move-only; unmapped on destruction.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lowbit/base/status.h"

namespace lowbit {

class HugePageBuffer {
 public:
  static Expected<HugePageBuffer> Allocate(size_t bytes);

  HugePageBuffer() = default;
  HugePageBuffer(HugePageBuffer&& o) noexcept;
  HugePageBuffer& operator=(HugePageBuffer&& o) noexcept;
  HugePageBuffer(const HugePageBuffer&) = delete;
  HugePageBuffer& operator=(const HugePageBuffer&) = delete;
  ~HugePageBuffer();

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0, map_len_ = 0;
};

}  // namespace lowbit

#include "lowbit/base/page_buffer.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace lowbit {

namespace {
constexpr size_t kHugePage = size_t{2} << 20;
}

Expected<PageBuffer> PageBuffer::Allocate(size_t bytes, const std::string& what) {
  PageBuffer b;
  if (bytes == 0) return b;
  // One huge page more than needed, keep the 2 MiB-aligned part (THP needs aligned 2 MiB ranges).
  const size_t len = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* raw = ::mmap(nullptr, len + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return Errorf("{}: cannot allocate {} bytes: {}", what, len, std::strerror(errno));
  const auto begin = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (begin + kHugePage - 1) / kHugePage * kHugePage;
  if (aligned > begin) ::munmap(raw, aligned - begin);
  ::munmap(reinterpret_cast<void*>(aligned + len), begin + kHugePage - aligned);
  b.data_ = reinterpret_cast<uint8_t*>(aligned);
  b.size_ = bytes;
  b.map_len_ = len;
  ::madvise(b.data_, len, MADV_HUGEPAGE);  // fails only where the kernel has no THP: then 4 KiB pages
  return b;
}

PageBuffer::PageBuffer(PageBuffer&& o) noexcept { *this = std::move(o); }

PageBuffer& PageBuffer::operator=(PageBuffer&& o) noexcept {
  if (this != &o) {
    Reset();
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    map_len_ = std::exchange(o.map_len_, 0);
  }
  return *this;
}

PageBuffer::~PageBuffer() { Reset(); }

void PageBuffer::Protect() {
  if (data_ != nullptr) ::mprotect(data_, map_len_, PROT_READ);
}

void PageBuffer::Reset() {
  if (data_ != nullptr) ::munmap(data_, map_len_);
  data_ = nullptr;
  size_ = map_len_ = 0;
}

Status PreadAll(int fd, const std::string& path, uint64_t offset, uint64_t bytes, uint8_t* dst) {
  uint64_t done = 0;
  while (done < bytes) {
    const ssize_t r = ::pread(fd, dst + done, std::min<uint64_t>(bytes - done, uint64_t{1} << 30), static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) return Errorf("{}: the file ended at byte {} while reading {} bytes at {}", path, offset + done, bytes, offset);
    if (r < 0) return Errorf("{}: cannot read at byte {}: {}", path, offset + done, std::strerror(errno));
    done += static_cast<uint64_t>(r);
  }
  return OkStatus();
}

}  // namespace lowbit

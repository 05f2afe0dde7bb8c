#include "lowbit/base/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "lowbit/base/memory_info.h"

namespace lowbit {

namespace {

// An open file's descriptor, closed on every path out, and its size.
struct OpenFile {
  explicit OpenFile(int f) : fd(f) {}
  OpenFile(OpenFile&& o) noexcept : fd(std::exchange(o.fd, -1)), size(o.size) {}
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;
  OpenFile& operator=(OpenFile&&) = delete;
  ~OpenFile() {
    if (fd >= 0) ::close(fd);
  }
  int fd;
  size_t size = 0;
};

// The errors Open, Read and Load share: a file that cannot be opened or stat'ed, a directory.
Expected<OpenFile> OpenForReading(const std::string& path) {
  OpenFile f(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (f.fd < 0) return Errorf("{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) return Errorf("{}: cannot stat: {}", path, std::strerror(errno));
  if (S_ISDIR(st.st_mode)) return Errorf("{}: is a directory, expected a file", path);
  f.size = static_cast<size_t>(st.st_size);
  return f;
}

constexpr size_t kHugePage = size_t{2} << 20;

}  // namespace

Expected<MappedFile> MappedFile::Map(const std::string& path, int fd, size_t size) {
  MappedFile f;
  f.path_ = path;
  if (size > 0) {
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) return Errorf("{}: cannot map {} bytes: {}", path, size, std::strerror(errno));
    f.data_ = static_cast<const uint8_t*>(p);
    f.size_ = f.map_len_ = size;
  }
  return f;
}

Expected<MappedFile> MappedFile::Copy(const std::string& path, int fd, size_t size) {
  MappedFile f;
  f.path_ = path;
  f.copied_ = true;
  if (size == 0) return f;
  // Reserve one huge page more than needed, keep the 2 MiB-aligned part: transparent huge pages
  // need aligned 2 MiB ranges.
  const size_t len = (size + kHugePage - 1) / kHugePage * kHugePage;
  void* raw = ::mmap(nullptr, len + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return Errorf("{}: cannot allocate {} bytes to read it into: {}", path, len, std::strerror(errno));
  const auto begin = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (begin + kHugePage - 1) / kHugePage * kHugePage;
  if (aligned > begin) ::munmap(raw, aligned - begin);
  ::munmap(reinterpret_cast<void*>(aligned + len), begin + kHugePage - aligned);  // never empty: aligned < begin + 2 MiB
  auto* p = reinterpret_cast<uint8_t*>(aligned);
  f.data_ = p;  // from here f unmaps the copy on every path out
  f.size_ = size;
  f.map_len_ = len;
  ::madvise(p, len, MADV_HUGEPAGE);  // fails only where the kernel has no THP: then 4 KiB pages
  size_t done = 0;
  while (done < size) {
    const ssize_t r = ::pread(fd, p + done, std::min<size_t>(size - done, size_t{1} << 30), static_cast<off_t>(done));
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) return Errorf("{}: the file ended after {} of its {} bytes while being read", path, done, size);
    if (r < 0) return Errorf("{}: cannot read at byte {}: {}", path, done, std::strerror(errno));
    done += static_cast<size_t>(r);
  }
  ::mprotect(p, len, PROT_READ);
  return f;
}

Expected<MappedFile> MappedFile::Open(const std::string& path) { return Load(path, Residency::kMapped); }

Expected<MappedFile> MappedFile::Read(const std::string& path) { return Load(path, Residency::kInMemory); }

Residency ChooseResidency(Residency wanted, size_t file_size) {
  if (wanted != Residency::kAuto) return wanted;
  return TransparentHugePages() && file_size <= ReadMemoryInfo().available / 2 ? Residency::kInMemory : Residency::kMapped;
}

Expected<MappedFile> MappedFile::Load(const std::string& path, Residency r) {
  LOWBIT_ASSIGN_OR_RETURN(OpenFile file, OpenForReading(path));  // one open and fstat, whichever way
  return ChooseResidency(r, file.size) == Residency::kInMemory ? Copy(path, file.fd, file.size) : Map(path, file.fd, file.size);
}

Expected<MappedFile> MappedFile::Reserve(const std::string& name, std::span<const uint8_t> head, size_t size) {
  if (head.size() > size) return Errorf("{}: a header of {} bytes cannot belong to a file of {}", name, head.size(), size);
  MappedFile f;
  f.path_ = name;
  if (size == 0) return f;
  void* p = ::mmap(nullptr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return Errorf("{}: cannot reserve {} bytes of address space: {}", name, size, std::strerror(errno));
  f.data_ = static_cast<const uint8_t*>(p);
  f.size_ = f.map_len_ = size;
  f.copied_ = true;  // anonymous memory: DropPages must not touch it
  f.reserved_ = true;
  if (!head.empty()) {
    if (::mprotect(p, head.size(), PROT_READ | PROT_WRITE) != 0) {
      return Errorf("{}: cannot make {} bytes writable: {}", name, head.size(), std::strerror(errno));
    }
    std::memcpy(p, head.data(), head.size());
    ::mprotect(p, head.size(), PROT_READ);
  }
  return f;
}

void MappedFile::DropPages(std::span<const uint8_t> range) const {
  if (data_ == nullptr || range.empty() || copied_) return;
  const auto begin = reinterpret_cast<uintptr_t>(range.data());
  const auto end = begin + range.size();
  const auto map_begin = reinterpret_cast<uintptr_t>(data_);
  if (begin < map_begin || end > map_begin + size_) return;
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t b = (begin + page - 1) / page * page;
  const uintptr_t e = end / page * page;
  if (e > b) ::madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
}

MappedFile::MappedFile(MappedFile&& other) noexcept { *this = std::move(other); }

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    Reset();
    data_ = other.data_;
    size_ = other.size_;
    map_len_ = other.map_len_;
    copied_ = other.copied_;
    reserved_ = other.reserved_;
    path_ = std::move(other.path_);
    other.data_ = nullptr;
    other.size_ = other.map_len_ = 0;
  }
  return *this;
}

MappedFile::~MappedFile() { Reset(); }

void MappedFile::Reset() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), map_len_);
  data_ = nullptr;
  size_ = map_len_ = 0;
}

}  // namespace lowbit

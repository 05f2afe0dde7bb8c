#include "lowbit/base/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace lowbit {

Expected<AtomicFile> AtomicFile::Create(const std::string& path) {
  std::string temp = path + ".tmp-XXXXXX";
  int fd = ::mkstemp(temp.data());
  if (fd < 0) return Errorf("{}: cannot create output file: {}", path, std::strerror(errno));
  ::fchmod(fd, 0644);
  FILE* f = ::fdopen(fd, "wb");
  if (f == nullptr) {
    int e = errno;
    ::close(fd);
    ::unlink(temp.c_str());
    return Errorf("{}: cannot open output file: {}", path, std::strerror(e));
  }
  return AtomicFile(path, temp, f);
}

AtomicFile::AtomicFile(AtomicFile&& o) noexcept
    : path_(std::move(o.path_)), temp_path_(std::move(o.temp_path_)), file_(o.file_),
      offset_(o.offset_) {
  o.file_ = nullptr;
}

AtomicFile::~AtomicFile() { Discard(); }

Status AtomicFile::Write(const void* data, size_t n) {
  if (file_ == nullptr) return Errorf("{}: write after the file was closed", path_);
  if (n > 0 && std::fwrite(data, 1, n, file_) != n) {
    return Errorf("{}: write failed at byte {}: {}", path_, offset_, std::strerror(errno));
  }
  offset_ += n;
  return OkStatus();
}

Status AtomicFile::WriteZeros(size_t n) {
  static const uint8_t kZeros[256] = {};
  while (n > 0) {
    size_t k = n < sizeof(kZeros) ? n : sizeof(kZeros);
    LOWBIT_RETURN_IF_ERROR(Write(kZeros, k));
    n -= k;
  }
  return OkStatus();
}

Status AtomicFile::Commit() {
  if (file_ == nullptr) return Errorf("{}: commit after the file was closed", path_);
  FILE* f = file_;
  file_ = nullptr;
  if (std::fflush(f) != 0 || std::fclose(f) != 0) {
    int e = errno;
    ::unlink(temp_path_.c_str());
    return Errorf("{}: cannot finish writing: {}", path_, std::strerror(e));
  }
  if (std::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    int e = errno;
    ::unlink(temp_path_.c_str());
    return Errorf("{}: cannot rename {} into place: {}", path_, temp_path_, std::strerror(e));
  }
  return OkStatus();
}

void AtomicFile::Discard() {
  if (file_ == nullptr) return;
  std::fclose(file_);
  file_ = nullptr;
  ::unlink(temp_path_.c_str());
}

}  // namespace lowbit

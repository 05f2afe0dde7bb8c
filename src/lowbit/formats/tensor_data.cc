#include "lowbit/formats/tensor_data.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "lowbit/base/page_buffer.h"

namespace lowbit {

Expected<TensorDataReader> TensorDataReader::For(const GgufFile& g) {
  TensorDataReader r;
  r.name_ = g.name();
  r.data_offset_ = g.data_offset();
  const std::string& path = g.file().path();
  if (!path.empty() && g.file().size() > 0) {
    r.fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (r.fd_ < 0) return Errorf("{}: cannot open: {}", path, std::strerror(errno));
    struct stat st {};
    if (::fstat(r.fd_, &st) != 0 || static_cast<uint64_t>(st.st_size) != g.file_size()) {
      return Errorf("{}: the file changed size since it was opened ({} bytes, now {})", path, g.file_size(),
                    static_cast<uint64_t>(st.st_size));
    }
    return r;
  }
  for (const GgufTensorInfo& t : g.tensors()) {
    if (t.data == nullptr && t.n_bytes > 0) {
      return Errorf("{}: tensor '{}' has no data in this process (only the header is here)", g.name(), t.name);
    }
  }
  return r;
}

TensorDataReader::TensorDataReader(TensorDataReader&& o) noexcept { *this = std::move(o); }

TensorDataReader& TensorDataReader::operator=(TensorDataReader&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    data_offset_ = o.data_offset_;
    name_ = std::move(o.name_);
  }
  return *this;
}

TensorDataReader::~TensorDataReader() {
  if (fd_ >= 0) ::close(fd_);
}

Status TensorDataReader::Read(const GgufTensorInfo& t, uint64_t offset, uint64_t bytes, uint8_t* dst) const {
  if (offset > t.n_bytes || bytes > t.n_bytes - offset) {
    return Errorf("{}: bytes {}..{} are outside tensor '{}' ({} bytes)", name_, offset, offset + bytes, t.name, t.n_bytes);
  }
  if (fd_ >= 0) return PreadAll(fd_, name_, data_offset_ + t.offset + offset, bytes, dst);
  if (t.data == nullptr) return Errorf("{}: tensor '{}' has no data in this process", name_, t.name);
  std::memcpy(dst, t.data + offset, bytes);
  return OkStatus();
}

}  // namespace lowbit

// ByteReader: a bounds-checked little-endian cursor over a byte span, for every binary parser.
// Reads never go past the end; a failed read returns an error naming the source, the byte offset
// and what was being read, so a truncated file gives "model.gguf: at byte 1234: truncated while
// reading tensor count (needs 8 bytes, 3 left)".
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "lowbit/base/status.h"

namespace lowbit {

class ByteReader {
 public:
  ByteReader(std::span<const uint8_t> bytes, std::string source)
      : bytes_(bytes), source_(std::move(source)) {}

  uint64_t offset() const { return pos_; }
  uint64_t remaining() const { return bytes_.size() - pos_; }
  uint64_t size() const { return bytes_.size(); }
  const std::string& source() const { return source_; }
  const uint8_t* here() const { return bytes_.data() + pos_; }

  template <typename T>
  Status Read(T* out, std::string_view what) {
    static_assert(std::is_trivially_copyable_v<T>);
    LOWBIT_RETURN_IF_ERROR(Need(sizeof(T), what));
    std::memcpy(out, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return OkStatus();
  }

  // n bytes as a view into the underlying span.
  Status ReadBytes(uint64_t n, std::span<const uint8_t>* out, std::string_view what) {
    LOWBIT_RETURN_IF_ERROR(Need(n, what));
    *out = bytes_.subspan(pos_, n);
    pos_ += n;
    return OkStatus();
  }

  Status Skip(uint64_t n, std::string_view what) {
    LOWBIT_RETURN_IF_ERROR(Need(n, what));
    pos_ += n;
    return OkStatus();
  }

  Status Need(uint64_t n, std::string_view what) const {
    if (n > remaining()) {
      return Errorf("{}: at byte {}: truncated while reading {} (needs {} bytes, {} left)", source_,
                    pos_, what, n, remaining());
    }
    return OkStatus();
  }

  // An error located at the current offset.
  template <typename... Args>
  Status ErrorHere(fmt::format_string<Args...> f, Args&&... args) const {
    return Status::Error(fmt::format("{}: at byte {}: ", source_, pos_) +
                         fmt::format(f, std::forward<Args>(args)...));
  }
  template <typename... Args>
  Status ErrorAt(uint64_t offset, fmt::format_string<Args...> f, Args&&... args) const {
    return Status::Error(fmt::format("{}: at byte {}: ", source_, offset) +
                         fmt::format(f, std::forward<Args>(args)...));
  }

 private:
  std::span<const uint8_t> bytes_;
  std::string source_;
  uint64_t pos_ = 0;
};

}  // namespace lowbit

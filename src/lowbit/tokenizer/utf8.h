// UTF-8 helpers for the tokenizers.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lowbit {

// Length of the UTF-8 sequence that starts with byte `lead` (1 for continuation or invalid bytes,
// so a scan always advances).
inline size_t Utf8Length(uint8_t lead) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}

}  // namespace lowbit

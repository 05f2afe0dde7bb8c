// libFuzzer target: safetensors_index parser. Any input must give a value or an error, never a crash, a hang or
// an unbounded allocation.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "lowbit/formats/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> bytes(data, size);
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)bytes;
  (void)text;
  (void)lowbit::ParseSafetensorsIndex(text, "fuzz");
  return 0;
}

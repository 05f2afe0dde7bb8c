// libFuzzer target: llama2c_tokenizer parser. Any input must give a value or an error, never a crash, a hang or
// an unbounded allocation.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "lowbit/formats/llama2c.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> bytes(data, size);
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)bytes;
  (void)text;
  (void)lowbit::ParseLlama2cTokenizer(bytes, 512, "fuzz");
  (void)lowbit::ParseLlama2cTokenizer(bytes, 3, "fuzz");
  return 0;
}

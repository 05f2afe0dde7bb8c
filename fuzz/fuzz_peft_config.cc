// libFuzzer target: PEFT adapter_config.json parser. Any input must give a value or an error, never
// a crash, a hang or an unbounded allocation.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "lowbit/train/lora_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)lowbit::train::ParsePeftConfig(text, "fuzz");
  return 0;
}

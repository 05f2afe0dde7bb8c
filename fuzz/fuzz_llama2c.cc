// libFuzzer target: llama2c parser. Any input must give a value or an error, never a crash, a hang or
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
  auto r = lowbit::Llama2cCheckpoint::Parse(bytes, "fuzz");
  if (r.ok()) {
    auto w = r->Weight(lowbit::Llama2cWeight::kClassifier);
    volatile uint8_t sink = w.empty() ? 0 : w.back();
    (void)sink;
  }
  return 0;
}

// libFuzzer target: gguf parser. Any input must give a value or an error, never a crash, a hang or
// an unbounded allocation.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "lowbit/formats/gguf_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> bytes(data, size);
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)bytes;
  (void)text;
  auto r = lowbit::GgufFile::Parse(bytes, "fuzz");
  if (r.ok()) {
    for (const auto& t : r->tensors()) {
      volatile uint8_t sink = t.n_bytes ? t.data[t.n_bytes - 1] : 0;  // data must be in bounds
      (void)sink;
    }
  }
  return 0;
}

// libFuzzer target: training checkpoints (the GGUF parser, then the checkpoint's keys and tensors
// against a fixed set of parameters). Any input must give a value or an error, never a crash.
#include <cstddef>
#include <cstdint>
#include <span>

#include "lowbit/formats/gguf_reader.h"
#include "lowbit/train/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto g = lowbit::GgufFile::Parse(std::span<const uint8_t>(data, size), "fuzz");
  if (!g.ok()) return 0;
  lowbit::train::Param w("w", 2, 4, true), n("n", 1, 4, false);
  (void)lowbit::train::LoadCheckpoint(*g, {&w, &n}, {.kind = "qat", .config = "{}"});
  return 0;
}

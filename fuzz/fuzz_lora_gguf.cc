// libFuzzer target: llama.cpp GGUF LoRA adapters (the GGUF parser, then the adapter's keys, tensor
// pairs and shapes). Any input must give a value or an error, never a crash or a hang.
#include <cstddef>
#include <cstdint>
#include <span>

#include "lowbit/formats/gguf_reader.h"
#include "lowbit/train/lora_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto g = lowbit::GgufFile::Parse(std::span<const uint8_t>(data, size), "fuzz");
  if (g.ok()) (void)lowbit::train::LoraFromGguf(*g);
  return 0;
}

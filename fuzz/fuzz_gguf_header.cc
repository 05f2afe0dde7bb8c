// libFuzzer target: a GGUF header alone, as a tensor-parallel rank receives it from rank 0 with
// --tp-send-weights (8 bytes of claimed file size, then the header), and the shard plans every rank
// count cuts from it. Any input must give a value or an error, never a crash, a hang or an
// unbounded allocation (the weights are never read: a header has none).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "lowbit/formats/gguf_reader.h"
#include "lowbit/model/llama.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 8) return 0;
  uint64_t file_size = 0;
  std::memcpy(&file_size, data, 8);
  auto h = lowbit::GgufFile::ParseHeader(std::span<const uint8_t>(data + 8, size - 8), file_size, "fuzz");
  if (!h.ok()) return 0;
  for (const auto& t : h->tensors()) {
    if (t.data != nullptr) __builtin_trap();  // a header alone has no data
  }
  for (int ranks = 1; ranks <= 3; ++ranks) {
    for (int r = 0; r < ranks; ++r) (void)lowbit::LlamaModel::Load(*h, r, ranks);  // views: an error, never a read
  }
  return 0;
}

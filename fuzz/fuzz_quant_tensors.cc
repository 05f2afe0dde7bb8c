// libFuzzer target: reading GPTQ / AWQ layers from a safetensors file. The file's __metadata__ may
// carry a "quantization_config" (JSON) to read it under; otherwise GPTQ v1 4-bit group 128 with
// act-order. Every "P.qweight" is read with the shape its tensors imply. Any input must give layers
// or an error, never a crash, a hang or an allocation out of proportion to the file.
#include <cstddef>
#include <cstdint>
#include <span>

#include "lowbit/formats/quant_checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = lowbit::SafetensorsFile::Parse(std::span<const uint8_t>(data, size), "fuzz");
  if (!f.ok()) return 0;
  lowbit::QuantConfig cfg;
  cfg.desc_act = true;
  cfg.sym = false;
  auto it = f->metadata().find("quantization_config");
  if (it != f->metadata().end()) {
    auto c = lowbit::ParseQuantConfig(it->second, "fuzz");
    if (!c.ok()) return 0;
    cfg = *c;
  }
  lowbit::QuantReadNotes notes;
  (void)lowbit::ForEachQuantizedLinear(
      *f, cfg,
      [](const std::string&, lowbit::IntQuantLinear&& q) {
        volatile float sink = q.rows > 0 && q.cols > 0 ? q.value(q.rows - 1, q.cols - 1) : 0.0f;
        (void)sink;
        return lowbit::OkStatus();
      },
      &notes);
  return 0;
}

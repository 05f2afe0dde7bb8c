// libFuzzer target: the GPTQ / AWQ quantization config parser (quantize_config.json, config.json's
// quantization_config, quant_config.json). Any input must give a value or an error, never a crash, a
// hang or an unbounded allocation; a config lowbit accepts for writing must parse again from what
// lowbit writes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "lowbit/formats/quant_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto c = lowbit::ParseQuantConfig(text, "fuzz");
  if (!c.ok()) return 0;
  for (const char* module : {"model.layers.0.self_attn.q_proj", "model.layers.31.mlp.down_proj", "lm_head", ""}) {
    (void)c->ForModule(module);
  }
  if (lowbit::CheckWritableConfig(*c).ok()) {
    if (!lowbit::ParseQuantConfig(lowbit::QuantizationConfigJson(*c), "again").ok()) std::abort();
    if (c->method == lowbit::QuantMethod::kGptq &&
        !lowbit::ParseQuantConfig(lowbit::GptqQuantizeConfigJson(*c), "again").ok()) {
      std::abort();
    }
  }
  return 0;
}

// libFuzzer target: bitsandbytes' JSON inputs, the 4-bit quant state (the bytes of
// "P.weight.quant_state.bitsandbytes__nf4") and config.json's quantization_config. Any input must
// parse or give an error, never a crash or a hang.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "lowbit/formats/bnb_checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto s = lowbit::ParseBnb4State(text, "fuzz");
  if (s.ok()) (void)lowbit::Bnb4StateJson(*s);
  (void)lowbit::DeclaresBnbQuantization(text);
  auto c = lowbit::ParseBnbConfig(text, "fuzz");
  if (c.ok()) (void)lowbit::BnbQuantizationConfigJson(*c);
  return 0;
}

// libFuzzer target: reading bitsandbytes linears from a safetensors file. Every
// "P.weight.quant_state.bitsandbytes__*" tensor names a 4-bit linear, read with the 2-D shape its own
// quant state claims; every "P.SCB" an 8-bit one, read with P.weight's shape. Any input must give
// layers or an error, never a crash, a hang or an allocation out of proportion to the file.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "lowbit/formats/bnb_checkpoint.h"

namespace {
int Read(const lowbit::SafetensorsFile& f) {
  const lowbit::TensorSet ts(f);
  for (const lowbit::StTensor& t : f.tensors()) {
    const size_t qs = t.name.find(".weight.quant_state.bitsandbytes__");
    if (qs != std::string::npos) {
      auto st = lowbit::ParseBnb4State(std::string_view(reinterpret_cast<const char*>(t.data.data()), t.data.size()), t.name);
      if (!st.ok() || st->shape.size() != 2) continue;
      auto l = lowbit::ReadBnb4Linear(ts, t.name.substr(0, qs), st->shape[0], st->shape[1]);
      if (l.ok() && !l->absmax.empty()) {
        volatile float sink = l->absmax.back();
        (void)sink;
      }
    }
    if (t.name.size() > 4 && t.name.ends_with(".SCB")) {
      const std::string prefix = t.name.substr(0, t.name.size() - 4);
      const lowbit::StTensor* w = f.Find(prefix + ".weight");
      if (w == nullptr || w->shape.size() != 2) continue;
      (void)lowbit::ReadBnb8Linear(ts, prefix, static_cast<int64_t>(w->shape[0]), static_cast<int64_t>(w->shape[1]));
    }
  }
  return 0;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = lowbit::SafetensorsFile::Parse(std::span<const uint8_t>(data, size), "fuzz");
  if (!f.ok()) return 0;
  return Read(*f);
}

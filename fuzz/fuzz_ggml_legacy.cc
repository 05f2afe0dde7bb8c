// libFuzzer target: legacy llama.cpp files ('ggml', 'ggmf', 'ggjt' v1-v3). Any input must give a
// value or an error, never a crash, a hang or an unbounded allocation: the parser, then the llama
// plan with every block of an older layout converted (repacked or requantized).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "lowbit/formats/ggml_legacy.h"
#include "lowbit/pipeline/convert.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = lowbit::GgmlLegacyFile::Parse(std::span<const uint8_t>(data, size), "fuzz");
  if (!f.ok()) return 0;
  auto plan = lowbit::PlanLegacyGgml(std::make_shared<const lowbit::GgmlLegacyFile>(std::move(f).value()), "", {},
                                     /*materialize=*/true);
  if (plan.ok() && !plan->tensors.empty()) {
    volatile uint8_t sink = plan->tensors.back().data.empty() ? 0 : plan->tensors.back().data.back();
    (void)sink;
  }
  return 0;
}

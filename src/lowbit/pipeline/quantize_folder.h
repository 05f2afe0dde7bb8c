// `lowbit quantize IN OUT --format gptq|awq`: a Hugging Face llama folder quantized to a GPTQ or AWQ
// folder that AutoGPTQ / GPTQModel / AutoAWQ, transformers and vLLM load: config.json with its
// quantization_config (and AutoGPTQ's quantize_config.json for GPTQ), the tokenizer files copied,
// and model.safetensors holding each layer matrix packed (formats/quant_checkpoint.h) and the
// other tensors (embedding, norms, lm_head) as they were, in their dtype. Written to a temporary
// folder beside OUT and renamed at the end: a failure leaves nothing.
//
// The values: --method rtn (each matrix rounded alone on the grid), gptq or awq (calibrated.h, on
// the integer grid that --bits / --group-size / --sym|--asym describe). Matrices are quantized in
// lowbit's (GGUF) row order; q and k rows go back to Hugging Face's rotate_half order when written,
// which permutes whole rows and so every group's scale and zero with them: the folder holds exactly
// the values that were optimized.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "lowbit/base/status.h"
#include "lowbit/pipeline/quantize.h"

namespace lowbit {

struct FolderQuantOptions {
  std::string format = "gptq";  // "gptq" or "awq"
  int bits = 4;
  int64_t group_size = 128;     // -1: one group per row
  std::optional<bool> sym;      // default: symmetric for GPTQ (AutoGPTQ's default), asymmetric for AWQ
  bool act_order = false;       // GPTQ desc_act
  bool static_groups = false;
  std::string range = "minmax";  // each group's range: "minmax", or "mse" (AutoGPTQ's shrink search)
};

// Uses o.input, o.output, o.method, o.calib, o.damp_percent, o.threads, o.show_progress.
Expected<QuantizeReport> QuantizeToFolder(const QuantizeOptions& o, const FolderQuantOptions& f);

}  // namespace lowbit

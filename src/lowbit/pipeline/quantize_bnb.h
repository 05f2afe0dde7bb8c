// `lowbit quantize IN OUT --format bnb --method nf4|fp4|int8`: a Hugging Face llama folder written
// as transformers saves a bitsandbytes model (load_in_4bit / load_in_8bit): config.json with its
// quantization_config, the tokenizer files, model.safetensors with each decoder linear in
// bitsandbytes' tensors (formats/bnb_checkpoint.h) and the other tensors (embedding, norms, lm_head,
// which transformers keeps in float) as they were. The values are bitsandbytes' own (quant/bnb_quant.h),
// computed on the weights in Hugging Face's order (bitsandbytes blocks run over the flattened stored
// tensor). Deterministic: the same input gives the same bytes.
#pragma once

#include <cstdint>
#include <string>

#include "lowbit/base/status.h"
#include "lowbit/pipeline/quantize.h"

namespace lowbit {

struct BnbFolderOptions {
  std::string method = "nf4";  // "nf4", "fp4" or "int8"
  bool double_quant = false;   // 4-bit: bnb_4bit_use_double_quant
  int64_t block_size = 64;     // 4-bit: 32 .. 4096, a power of two
  double int8_threshold = 6.0; // 8-bit: llm_int8_threshold written to the config
  // 4-bit, beyond bitsandbytes: search each block's scale (QuantizeBnb4Searched), weighted by the
  // importance matrix o.imatrix when one is given. The folder stays a valid bitsandbytes folder.
  bool scale_search = false;
  // NF4 at block 32 or 64, beyond bitsandbytes: the codes chosen by GPTQ over o.calib (calibrated.h, on
  // the internal NF4G32 / NF4G64 rows' grid: each block's scale searched with the Hessian's diagonal
  // as importance, then GPTQ's error feedback across columns), double quantization applied to the
  // scales it chose. Still a valid bitsandbytes folder.
  bool gptq = false;
};

// Uses o.input, o.output, o.imatrix; with f.gptq o.calib, o.damp_percent, o.threads, o.show_progress.
Expected<QuantizeReport> QuantizeToBnbFolder(const QuantizeOptions& o, const BnbFolderOptions& f);

}  // namespace lowbit

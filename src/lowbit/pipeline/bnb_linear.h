// The bitsandbytes linears of a Hugging Face folder (formats/bnb_checkpoint.h) on their way into
// lowbit: planned by PlanConversion as lazy sources, then either packed into the internal 4-bit rows
// the kernels run (NF4G32 .. FP4G64; `run`, `perplexity`, `bench -m DIR`) or dequantized to the
// values bitsandbytes computes (level * absmax; q * SCB / 127), for a GGUF or where no kernel fits.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/formats/bnb_checkpoint.h"
#include "lowbit/formats/safetensors.h"
#include "lowbit/pipeline/quant_linear.h"

namespace lowbit {

struct BnbSource {
  std::shared_ptr<const SafetensorsModel> tensors;
  std::string prefix;            // HF module, e.g. "model.layers.0.self_attn.q_proj"
  int64_t rows = 0, cols = 0;    // out_features, in_features (config.json)
  uint32_t unpermute_heads = 0;  // > 0: rows in HF rotate_half order over this many heads
  bool eight_bit = false;        // LLM.int8 (weight + SCB); else 4-bit
  double int8_threshold = 6.0;   // llm_int8_threshold of the config (8-bit)
};

// The values bitsandbytes dequantizes to, rows in GGUF order ([rows][cols] floats).
Expected<std::vector<float>> ReadBnbValues(const BnbSource& s);
// The rows the engine runs, in GGUF row order: a 4-bit layer as NF4G*/FP4G* (bit-exact values), an
// 8-bit one as I8R32 / I8R256; F32 values where no internal type fits (then `note` says why). Packs
// into `dst` when it has exactly BnbNativeBytes(s) bytes (the loader's one huge-page arena for all
// layers), else into memory of its own.
Expected<NativeWeight> ToNativeBnb(const BnbSource& s, std::span<uint8_t> dst = {});
// The bytes ToNativeBnb packs this layer into; 0 where that is not known from the quant state alone
// (a state that does not parse, or no internal type: ToNativeBnb then says why and allocates).
uint64_t BnbNativeBytes(const BnbSource& s);

}  // namespace lowbit

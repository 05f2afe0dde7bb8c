// Conversion of models into GGUF (`lowbit convert`).
//
// Inputs: a llama2.c checkpoint (+ its tokenizer.bin), a Hugging Face folder (config.json +
// safetensors, tokenizer from tokenizer.model or tokenizer.json; float, or GPTQ / AWQ quantized with
// its quantization config), a bare safetensors file, or a GGUF.
// Every input is first described as a ConversionPlan: metadata plus a list of tensors in GGUF naming
// and GGUF dimension order, each pointing into the mapped input. Writing the plan streams tensor by
// tensor, converting F32/F16/BF16 and undoing the Hugging Face Q/K row permutation on the fly, so
// conversion needs one tensor of memory beyond the mapped input.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/formats/gguf.h"

namespace lowbit {

struct QuantizedSource;  // pipeline/quant_linear.h
struct BnbSource;        // pipeline/bnb_linear.h

struct PlannedTensor {
  std::string name;                // GGUF name, e.g. "blk.0.attn_q.weight"
  std::vector<uint64_t> dims;      // GGUF order: dims[0] is the row length
  GgmlType source_type;            // type of `data`
  std::span<const uint8_t> data;   // into the mapped input
  uint32_t unpermute_heads = 0;    // > 0: rows are in HF rotate_half order over this many heads
  std::string source_name;         // the input's own name for it (Hugging Face folders), when known
  // A GPTQ / AWQ quantized linear (its rows already in GGUF order once read): `data` is empty and
  // `source_type` F32 (the dequantized values); the writer and MaterializePlan read it.
  std::shared_ptr<const QuantizedSource> quant;
  // A bitsandbytes linear (NF4 / FP4 / LLM.int8): `data` empty, `source_type` F32, as `quant`.
  std::shared_ptr<const BnbSource> bnb;
};

struct ConversionPlan {
  std::string input_kind;  // "llama2.c", "huggingface", "safetensors", "gguf"
  std::vector<GgufKv> kvs;
  std::vector<PlannedTensor> tensors;
  std::vector<std::shared_ptr<void>> keep_alive;  // mapped inputs the spans point into
  std::vector<const class MappedFile*> mappings;  // their mappings, to drop pages once written
};

struct ConvertOptions {
  std::string input;
  std::string vocab;         // optional tokenizer file (tokenizer.bin/.model/.json or a GGUF)
  std::string output;
  GgmlType outtype = GgmlType::kF32;  // F32, F16 or BF16: 2-D float tensors get this type
  // GPTQ / AWQ linears: false keeps them quantized (Q4_0 / Q8_0 exactly, Q4_1, or `fallback` with
  // the error it adds: pipeline/quant_linear.h); true writes their dequantized values as `outtype`.
  bool dequantize = false;
  GgmlType fallback = GgmlType::kQ8_0;
  // When set, receives what happened to the quantized linears: one line per linear that was not kept
  // exactly (type, why, the error added), then a summary line. The writer prints nothing itself.
  std::vector<std::string>* notes = nullptr;
  bool show_progress = false;
};

Expected<ConversionPlan> PlanConversion(const std::string& input, const std::string& vocab);
Status WriteConversion(const ConversionPlan& plan, const ConvertOptions& opts);
Status Convert(const ConvertOptions& opts);

// Copies row r of a HF rotate_half-ordered matrix into GGUF (interleaved-pair) order: for each head
// of `head_dim` rows, output row 2i+j comes from input row j*head_dim/2 + i.
uint64_t UnpermuteSourceRow(uint64_t out_row, uint64_t n_rows, uint32_t n_heads);

}  // namespace lowbit

// Conversion of models into GGUF (`lowbit convert`).
//
// Inputs: a llama2.c checkpoint (+ its tokenizer.bin), a Hugging Face folder (config.json +
// safetensors, tokenizer from tokenizer.model or tokenizer.json; float, or GPTQ / AWQ quantized with
// its quantization config), a bare safetensors file, a GGUF, or a legacy llama.cpp file of 2023
// ('ggml', 'ggmf', 'ggjt' v1-v3; convert_legacy.cc).
// Every input is first described as a ConversionPlan: metadata plus a list of tensors in GGUF naming
// and GGUF dimension order, each pointing into the mapped input. Writing the plan streams tensor by
// tensor, converting F32/F16/BF16 and undoing the Hugging Face Q/K row permutation on the fly, so
// conversion needs one tensor of memory beyond the mapped input.
#pragma once

#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/formats/ggml_legacy.h"
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
  // A legacy GGML tensor whose blocks are in an older layout than today's (`data` holds them; the
  // writer converts them block by block: formats/ggml_legacy.h). kV3 is today's layout.
  LegacyBlockLayout legacy_layout = LegacyBlockLayout::kV3;
  // A bitsandbytes linear (NF4 / FP4 / LLM.int8): `data` empty, `source_type` F32, as `quant`.
  std::shared_ptr<const BnbSource> bnb;
};

// What a legacy GGML file does not store; defaults as llama.cpp's convert-llama-ggml-to-gguf.py.
struct LegacyGgmlOptions {
  uint32_t context_length = 2048;  // LLaMA 1's; 4096 for Llama 2 models
  float rms_epsilon = 5e-6f;       // 1e-6 for LLaMA 1, 1e-5 for Llama 2
};

struct ConversionPlan {
  std::string input_kind;  // "llama2.c", "huggingface", "safetensors", "gguf", "ggml-legacy"
  std::string input_format;  // legacy GGML files: "ggjt v3", "ggml (unversioned)", ...
  std::vector<GgufKv> kvs;
  std::vector<PlannedTensor> tensors;
  std::vector<std::shared_ptr<void>> keep_alive;  // mapped inputs the spans point into
  std::vector<const class MappedFile*> mappings;  // their mappings, to drop pages once written
  std::vector<std::string> notes;  // what the user should know about the input (one line each)
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
  LegacyGgmlOptions legacy;
};

// Every tensor's `data` is in today's layout (legacy blocks are converted into memory the plan
// owns), so any consumer can read the plan.
Expected<ConversionPlan> PlanConversion(const std::string& input, const std::string& vocab,
                                        const LegacyGgmlOptions& legacy = {});
// A legacy GGML file as a llama plan. With `materialize` false, tensors in an older block layout keep
// pointing into the file (PlannedTensor::legacy_layout) for WriteConversion to convert as it streams.
Expected<ConversionPlan> PlanLegacyGgml(std::shared_ptr<const GgmlLegacyFile> file, const std::string& vocab,
                                        const LegacyGgmlOptions& opts, bool materialize);
// tokenizer.* metadata from a tokenizer file (tokenizer.bin/.model/.json or a GGUF's), padded to n_vocab.
Expected<std::vector<GgufKv>> TokenizerKvs(const std::string& path, int64_t n_vocab);
// Whether a file starts with a legacy GGML magic.
bool HasLegacyGgmlMagic(const std::string& path);

// Converts a tensor of legacy blocks into today's blocks of its type: bit for bit where today's block
// holds the same values, else the block is requantized from its dequantized values (counted here).
struct LegacyConversionTally {
  struct Counts {
    uint64_t blocks = 0, requantized = 0;  // blocks converted, of which requantized
    int64_t tensors = 0;                   // tensors converted
    double max_abs_change = 0;             // largest change of a weight by requantization
  };
  std::map<GgmlType, Counts> by_type;
  void Merge(const LegacyConversionTally& o);
  // One line saying which blocks were requantized and why; empty when every block was kept exactly.
  std::string Note(const std::string& format) const;
};
Status ConvertLegacyTensor(const PlannedTensor& t, std::span<uint8_t> dst, LegacyConversionTally* tally);
Status WriteConversion(const ConversionPlan& plan, const ConvertOptions& opts);
Status Convert(const ConvertOptions& opts);

// Copies row r of a HF rotate_half-ordered matrix into GGUF (interleaved-pair) order: for each head
// of `head_dim` rows, output row 2i+j comes from input row j*head_dim/2 + i.
uint64_t UnpermuteSourceRow(uint64_t out_row, uint64_t n_rows, uint32_t n_heads);
// Rows of `row_bytes` between the source's (Hugging Face) order and the GGUF's: to_gguf, GGUF row r
// from source row UnpermuteSourceRow(r); else the way back. n_heads 0: the same order.
void CopyPermutedRows(const uint8_t* src, uint8_t* dst, int64_t rows, uint64_t row_bytes, uint32_t n_heads, bool to_gguf);

}  // namespace lowbit

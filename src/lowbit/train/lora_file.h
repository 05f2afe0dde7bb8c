// LoRA adapters: read and write llama.cpp's GGUF adapters and PEFT's folders, check them against a
// base model, attach them to a model for run-time application, merge them into a base.
//
// In memory an adapter is in llama.cpp's terms: per base weight (GGUF name), A [rank][cols] and
// B [rows][rank] in F32 with the weight's rows in GGUF order, and the scale its delta B A takes.
//
// GGUF (llama.cpp's convert_lora_to_gguf.py / src/llama-adapter.cpp): general.type = "adapter",
//   adapter.type = "lora", adapter.lora.alpha (f32; 0 = none), general.architecture of the base;
//   tensors "<base>.lora_a" (ggml shape [cols, rank]) and "<base>.lora_b" ([rank, rows]); the
//   rank comes from the tensors; scale = user_scale * alpha / rank, or user_scale when alpha is 0.
//   "*_norm.weight" tensors are skipped, as llama.cpp skips them.
// PEFT (src/peft/tuners/lora): a folder with adapter_config.json (peft_type LORA, r, lora_alpha,
//   use_rslora, target_modules, rank_pattern, alpha_pattern) and adapter_model.safetensors with
//   "base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight" [r, in] and ".lora_B.weight"
//   [out, r]; scale = alpha / r (alpha / sqrt(r) with rsLoRA). Hugging Face keeps Q and K rows in
//   rotate_half order where GGUF keeps adjacent pairs, so for the architectures whose GGUF rows
//   were un-permuted on conversion (non-NeoX RoPE) B's rows of q_proj and k_proj are un-permuted on
//   read and permuted back on write, as llama.cpp's converter does. DoRA, fan_in_fan_out, trained
//   biases, modules_to_save and embedding adapters are refused with a message.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/formats/gguf_reader.h"
#include "lowbit/model/llama.h"

namespace lowbit::train {

struct LoraTensor {
  std::string base;        // the base weight's GGUF name, e.g. "blk.0.attn_q.weight"
  int64_t rank = 0, rows = 0, cols = 0;
  std::vector<float> a;    // [rank][cols]
  std::vector<float> b;    // [rows][rank]
  float scale = 1.0f;      // the delta is scale * B A (times the user's scale)
};

struct LoraAdapter {
  std::string source;      // file or folder it came from (messages)
  std::string arch;        // general.architecture of its base ("" for PEFT: not recorded)
  float alpha = 0.0f;      // as written in the file (GGUF meaning: 0 = none)
  std::vector<LoraTensor> tensors;
  std::vector<std::string> skipped;  // tensors read but not applied (norms in GGUF adapters)

  const LoraTensor* Find(std::string_view base) const;
};

// GGUF adapters. `file` must already be parsed (GgufFile::Open or Parse).
Expected<LoraAdapter> LoraFromGguf(const GgufFile& file);
// PEFT: the parsed adapter_config.json (exposed for the fuzzer).
struct PeftConfig {
  int64_t r = 0;
  double lora_alpha = 0;
  bool use_rslora = false;
  std::vector<std::string> target_modules;
  std::vector<std::pair<std::string, int64_t>> rank_pattern;
  std::vector<std::pair<std::string, double>> alpha_pattern;
};
Expected<PeftConfig> ParsePeftConfig(std::string_view json, const std::string& name);
// A PEFT folder; `base` gives the head counts and RoPE layout for the Q/K row order.
Expected<LoraAdapter> ReadPeftAdapter(const std::string& dir, const LlamaConfig& base);
// A GGUF file or a PEFT folder.
Expected<LoraAdapter> ReadLoraAdapter(const std::string& path, const LlamaConfig& base);

// Writes a GGUF adapter (tensors in `type`: F32, F16 or BF16). Tensors whose scale is not
// alpha / rank for one common alpha have their scale folded into B and the file says alpha 0.
Status WriteLoraGguf(const LoraAdapter& adapter, const std::string& arch, const std::string& path,
                     GgmlType type = GgmlType::kF32);
// Writes a PEFT folder (adapter_config.json + adapter_model.safetensors, F32).
Status WritePeftAdapter(const LoraAdapter& adapter, const LlamaConfig& base, const std::string& dir,
                        const std::string& base_model_name);

// Checks an adapter against a model: architecture, every tensor's base weight present with the
// shapes the adapter implies, ranks consistent. Errors name the adapter, the tensor and the shapes.
Status CheckLoraAgainst(const LoraAdapter& adapter, const GgufFile& base, const LlamaConfig& cfg);

// --- Run time: `lowbit run|perplexity|serve --lora F [--lora-scaled F S]`.
struct LoraSpec {
  std::string path;
  float scale = 1.0f;
};

// Adapters attached to a model: owns the A/B memory and the per-weight update lists the model's
// WeightViews point to. Must outlive every session on the model; detaches nothing on destruction,
// so destroy the model first or call Detach().
class LoraSet {
 public:
  const std::vector<LoraAdapter>& adapters() const { return adapters_; }
  // Clears the updates from the model's weights.
  void Detach(LlamaModel* model) const;

 private:
  friend Expected<std::unique_ptr<LoraSet>> AttachLoraAdapters(LlamaModel*, const GgufFile&, std::span<const LoraSpec>);
  std::vector<LoraAdapter> adapters_;
  std::vector<std::vector<LowRankUpdate>> lists_;  // one per adapted weight
};

// The hook for run, perplexity and serve: reads each adapter, checks it against the model, and
// attaches scale * alpha / rank (or the user's scale alone when alpha is 0) low-rank updates to the
// weights. Several adapters on one weight apply in the order given. One-rank models only (a
// tensor-parallel model would need the adapters sharded: merge them with `lowbit lora merge`).
Expected<std::unique_ptr<LoraSet>> AttachLoraAdapters(LlamaModel* model, const GgufFile& base,
                                                      std::span<const LoraSpec> specs);

// --- `lowbit lora merge`: what llama.cpp's llama-export-lora writes for the same inputs. Every
// base tensor an adapter touches becomes base + sum_i scale_i * B_i A_i computed in F32, written as
// F32 when the base tensor is F32 and F16 otherwise (or `outtype` when given); the others are
// copied unchanged. Every adapter must cover the same tensors (llama.cpp's rule).
struct MergeOptions {
  std::string base, output;
  std::vector<LoraSpec> adapters;
  std::string outtype;  // "": llama.cpp's choice; else f32, f16, bf16 or a type lowbit writes
  int threads = 0;
};
struct MergeReport {
  int merged = 0, copied = 0;
  uint64_t file_size = 0;
};
Expected<MergeReport> MergeLora(const MergeOptions& o);

}  // namespace lowbit::train

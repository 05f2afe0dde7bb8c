// The quantization config of a GPTQ or AWQ Hugging Face folder: parsed into one struct, written back
// as the tools write it. docs/FORMATS-NOTES.md lists the sources behind every rule here.
//
// Read from (LoadQuantConfig, in this order of precedence, as transformers and vLLM do):
//   config.json "quantization_config"   (transformers, vLLM, GPTQModel, AutoAWQ >= 0.2)
//   quantize_config.json                 (AutoGPTQ, GPTQModel; vLLM's fallback for GPTQ)
//   quant_config.json                    (AutoAWQ < 0.2, and AutoGPTQ's compat name)
// When config.json and quantize_config.json both hold one, their layout fields must agree.
//
// Keys (case-insensitive, as AutoGPTQ lowercases them; synonyms as AutoGPTQ/GPTQModel map them):
//   quant_method | method        "gptq", "awq"; "auto_round" with a gptq format reads as GPTQ;
//                                 "marlin", "bitblas", "qqq" and non-int methods are rejected by name
//   checkpoint_format | format   "gptq" (v1, zeros stored minus one; the default), "gptq_v2"
//                                 (raw zeros), "gemm" (AWQ); "marlin"/is_marlin_format, "bitblas",
//                                 "ipex", "qqq" are other layouts and rejected by name
//   bits | w_bit                 GPTQ 2/3/4/8 (required, as vLLM requires it); AWQ 4
//   group_size | q_group_size    -1 (per output channel) or > 0 (required for GPTQ)
//   desc_act, sym, static_groups, true_sequential, damp_percent, lm_head, model_file_base_name
//   pack_dtype                   "int8" | "int16" | "int32" | "int64" (GPTQModel; default int32)
//   meta                         object; meta.quantizer "tool:version" (string or list)
//   dynamic                      GPTQModel per-module overrides {regex: {...}}: "-:" excludes a
//                                 module, "+:" (or no prefix) overrides bits / group_size / sym /
//                                 desc_act; an override of the packing or the format is rejected
//   zero_point, version, backend AWQ: zero_point must be true, version "gemm" (gemv, gemv_fast,
//                                 marlin, exllama, ipex are other layouts and rejected by name),
//                                 backend "llm-awq" (TinyChat layout) rejected
//   modules_to_not_convert       modules (substring match, as AutoAWQ and transformers match) left
//                                 unquantized
// Unknown keys are ignored (quantization-time knobs); a known key of the wrong type is an error.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/base/status.h"

namespace lowbit {

enum class QuantMethod { kGptq, kAwq };
struct CompiledRegex;  // a PCRE2 pattern (quant_config.cc)
enum class CheckpointFormat { kGptq /* v1 */, kGptqV2, kAwqGemm };
std::string_view CheckpointFormatName(CheckpointFormat f);  // "gptq", "gptq_v2", "gemm"

// How a GPTQ v1 ("gptq") zero field is turned into the effective zero (see gptq.h): the readers
// disagree only for a field holding all ones, which no quantizer writes except as "zero 0 minus 1".
enum class V1Zeros {
  kPerField,   // zero = field + 1, so all ones reads as 2^bits (AutoGPTQ, vLLM, exllama, llama.cpp)
  kGptqModel,  // 2/4/8-bit: a 1 added to every field of the word with carry; 3-bit: (field + 1)
               // mod 8 (GPTQModel, which writes zero 0 that way; also lowbit's own files)
};

struct DynamicRule {
  std::string pattern;  // as written, "+:" / "-:" prefix included
  bool skip = false;    // "-:": the matching modules stay unquantized
  std::optional<int> bits;
  std::optional<int64_t> group_size;
  std::optional<bool> sym, desc_act;
  std::string overrides_json;  // the override object as written ("{}" when none)
  std::shared_ptr<const CompiledRegex> regex;  // the pattern without its prefix, anchored
};

// Builds a rule from a GPTQModel `dynamic` entry; `name` locates errors.
Expected<DynamicRule> MakeDynamicRule(const std::string& pattern, std::string_view overrides_json,
                                      const std::string& name);

// The settings one module is quantized with.
struct ModuleQuant {
  int bits = 4;
  int64_t group_size = 128;  // -1: per output channel
  bool sym = true;
  bool desc_act = false;
};

struct QuantConfig {
  QuantMethod method = QuantMethod::kGptq;
  CheckpointFormat format = CheckpointFormat::kGptq;
  int bits = 4;
  int64_t group_size = 128;  // -1: one group per row
  bool sym = true;
  bool desc_act = false;
  bool static_groups = false;
  bool true_sequential = true;
  double damp_percent = 0.01;
  int pack_bits = 32;        // pack_dtype width
  bool lm_head = false;      // the lm_head is quantized too (GPTQModel)
  bool zero_point = true;    // AWQ
  std::vector<std::string> modules_to_not_convert;
  std::vector<DynamicRule> dynamic;
  std::vector<std::string> quantizer;  // meta.quantizer entries, "tool:version"
  std::string meta_json;               // the meta object as read ("" when absent)
  std::string model_file_base_name;    // AutoGPTQ's weight file stem ("" when absent)
  V1Zeros v1_zeros = V1Zeros::kPerField;

  // Effective settings for `module` (e.g. "model.layers.3.mlp.down_proj"): nullopt when the module
  // stays unquantized (modules_to_not_convert, a "-:" rule, an lm_head without lm_head: true).
  ModuleQuant Base() const { return {bits, group_size, sym, desc_act}; }
  // An error only when a `dynamic` pattern cannot be matched (PCRE2's match limit).
  Expected<std::optional<ModuleQuant>> ForModule(std::string_view module) const;
};

// Parses a quantize_config.json / quant_config.json object, or a config.json holding one under
// "quantization_config". Errors name `name` and the field.
Expected<QuantConfig> ParseQuantConfig(std::string_view json, const std::string& name);
// The config of a model folder (precedence above); an error when it holds none.
Expected<QuantConfig> LoadQuantConfig(const std::string& folder);

// A config that lowbit can write: GPTQ v1/v2 with bits 2/3/4/8, or AWQ GEMM 4-bit with zero points.
Status CheckWritableConfig(const QuantConfig& c);
// quantize_config.json as AutoGPTQ writes it (its keys in its order), plus GPTQModel's pack_dtype,
// lm_head, dynamic and meta; meta.quantizer names lowbit when `c.quantizer` is empty.
std::string GptqQuantizeConfigJson(const QuantConfig& c);
// AutoAWQ's legacy quant_config.json (zero_point, q_group_size, w_bit, version "GEMM", ...).
std::string AwqQuantConfigJson(const QuantConfig& c);
// The object config.json holds as "quantization_config": the GPTQ dict above, or AutoAWQ's
// to_transformers_dict (quant_method "awq", zero_point, group_size, bits, version "gemm", ...).
std::string QuantizationConfigJson(const QuantConfig& c);
// `config_json` (a model's config.json) with "quantization_config" set to the object above; the
// other keys keep their order and values.
Expected<std::string> WithQuantizationConfig(std::string_view config_json, const QuantConfig& c,
                                             const std::string& name);

}  // namespace lowbit

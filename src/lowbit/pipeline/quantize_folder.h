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
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/formats/quant_config.h"
#include "lowbit/pipeline/convert.h"
#include "lowbit/pipeline/quantize.h"
#include "lowbit/quant/linear_quant.h"

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

// The pieces QuantizeToFolder is made of, for other writers of the same folders (QAT, train/qat.h).
// The folder's quantization config for `f` (checked: a layout the writer can write).
Expected<QuantConfig> FolderQuantConfig(const FolderQuantOptions& f, double damp_percent);
// The integer grid `f` describes under that config.
Expected<LinearQuantSpec> FolderGridSpec(const FolderQuantOptions& f, const QuantConfig& qc);
// The plan of a Hugging Face float folder for `format`, refusing other inputs and an existing OUT.
Expected<ConversionPlan> PlanFolderInput(const std::string& input, const std::string& output, const std::string& format,
                                         const std::string& vocab = "");

// What a folder's tensors hold, asked for in layer order (LayerOrder). `matrix`: the grid of a layer
// matrix (a 2-D blk.* tensor) in GGUF row order, filling the report's error figures. `other`: new
// values for another tensor, or an empty vector to copy the input's bytes; written in the input's
// dtype, or F32 when `f32` says so.
struct FolderValues {
  std::vector<float> values;
  bool f32 = false;
};
struct FolderContents {
  std::function<Expected<LinearQuantized>(const PlannedTensor& t, TensorQuantReport* rep)> matrix;
  std::function<Expected<FolderValues>(const PlannedTensor& t, TensorQuantReport* rep)> other;
};
// Writes the folder (OUT.tmp-PID, renamed when complete): model.safetensors, config.json with the
// quantization_config, quantize_config.json for GPTQ, the tokenizer files. `report` arrives with the
// caller's mix, method and threads; the tensors' rows, sizes and the file size are filled in.
Expected<QuantizeReport> WriteQuantizedFolder(const ConversionPlan& plan, const std::string& input, const std::string& output,
                                              const QuantConfig& qc, const FolderContents& contents, QuantizeReport report);

}  // namespace lowbit

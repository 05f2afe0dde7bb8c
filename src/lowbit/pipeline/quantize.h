// `lowbit quantize`: read a model (any input `lowbit convert` reads, or a GGUF), choose each 2-D
// float tensor's type by the mix rules (quant_mix.h), quantize its rows in parallel, and write a
// GGUF atomically with `general.file_type` and `general.quantization_version` set. 1-D float
// tensors (norms, biases) are written F32, as `lowbit convert` writes them (the engine needs F32
// norms: a BF16 Hugging Face model's norms were copied as BF16 before); all other tensors and all
// metadata are copied unchanged. Memory: the mapped input, one output tensor, and
// one row of scratch per thread.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/pipeline/calibrated.h"
#include "lowbit/numeric/ggml_type.h"
#include "lowbit/pipeline/convert.h"
#include "lowbit/pipeline/quant_mix.h"

namespace lowbit {

struct QuantizeOptions {
  std::string input, output, type;
  std::string vocab;    // for llama2.c inputs
  std::string imatrix;  // llama.cpp .dat or GGUF imatrix
  bool pure = false;
  bool allow_requantize = false;
  std::vector<std::string> tensor_types;  // "REGEX=TYPE"
  std::string output_tensor_type, token_embedding_type;
  int threads = 0;  // 0: all hardware threads
  bool show_progress = false;
  // How the values of each layer matrix are chosen: rtn (each tensor alone, as above), or a
  // calibrated method (calibrated.h) over --calib text; the type rules stay the same.
  QuantizeMethod method = QuantizeMethod::kRtn;
  CalibrationOptions calib;
  double damp_percent = 0.01;
  // AWQ: AutoAWQ's duo_scaling (s = x_mean^r / w_mean^(1-r)) and apply_clip switches.
  bool awq_duo_scaling = true;
  bool awq_clip = true;
};

struct TensorQuantReport {
  std::string name;
  std::string type;
  std::string source_type;
  std::vector<uint64_t> shape;
  uint64_t n_elements = 0, bytes = 0;
  bool quantized = false;  // false: copied unchanged
  double rmse = 0, weighted_rmse = -1, max_abs_err = 0, sqnr_db = 0;
  std::string note;  // fallback explanation
  double bits_per_weight() const { return n_elements ? 8.0 * bytes / n_elements : 0; }
};

struct QuantizeReport {
  std::string mix;
  uint32_t file_type = 0;
  std::vector<TensorQuantReport> tensors;
  uint64_t file_size = 0;
  uint64_t input_tensor_bytes = 0;
  double seconds = 0;
  int threads = 1;
  bool used_imatrix = false;
  std::string method = "rtn";
  CalibratedReport calibration;  // for calibrated methods

  nlohmann::json ToJson() const;
  std::string ToText() const;
};

Expected<QuantizeReport> QuantizeModel(const QuantizeOptions& opts);

// The type each tensor of `plan` gets when quantized as `opts` asks (type, pure, tensor_types,
// output/token embedding types, allow_requantize; `has_imatrix` changes a few of llama.cpp's rules),
// in plan order: what QuantizeModel writes, decided without writing (the advisor sizes candidate
// files with it; QAT, train/qat.h, trains for exactly these types). `quantized` is false for tensors
// copied unchanged; `note` explains a fallback.
struct PlannedType {
  GgmlType type;
  bool quantized = false;
  std::string note;
};
Expected<std::vector<PlannedType>> PlanQuantizedTypes(const struct ConversionPlan& plan, const QuantizeOptions& opts,
                                                      bool has_imatrix);

// The order a calibrated writer takes the plan's tensors in: layers ascending, `output.weight` last
// (calibrated.h computes layer by layer; the classifier's importance comes from the final states).
std::vector<size_t> LayerOrder(const ConversionPlan& plan);
// A calibrated result's error statistics (against the original weights) and note, into its row.
void FillCalibratedStats(const CalibratedTensor& c, TensorQuantReport* rep);

}  // namespace lowbit

// Calibrated quantization of a model's decoder layers: GPTQ and AWQ over a LayerCalibrator
// (calibration.h), one layer at a time, producing each layer tensor's result for a writer (GGUF in
// quantize.cc, GPTQ/AWQ folders in quantize_folder.cc). quant/ does the arithmetic on plain arrays;
// this file runs the model's sublayers to feed it.
//
// GPTQ (ALGORITHMS.md; AutoGPTQ's true-sequential order): per layer, the Hessian of the input shared
// by q/k/v is accumulated over every calibration token, q, k and v are quantized; the attention is
// run again with them to get o's input, o is quantized; the hidden states move past the attention
// (with the quantized weights); gate/up, then down, likewise; the states move past the FFN. Each
// matrix is rounded on the integer grid (folder output) or on its ggml type's own grid (GGUF
// output, GptqQuantizeGgml), and the layer goes on with the dequantized values.
//
// AWQ (AutoAWQ's quantizer.py and models/llama.py): per layer, from the float layer: the inputs'
// mean |x| per channel, the float outputs of the attention and FFN blocks, the down (and, when v and
// o have the same shape, o) inputs; then for each group that shares an input (q/k/v after the input
// norm, o after v, gate/up after the post-attention norm, down after up) a grid of 20 ratios picks
// the per-channel scales whose pseudo-quantized block output is closest to the float one; the scales
// are folded into what precedes (norm weights, v's or up's rows) and into the group's columns; then
// each matrix but q and k gets AutoAWQ's clip search (integer grid only: the ggml types search
// their own ranges), and is quantized. As AutoAWQ, the next layer's inputs are the float layer's
// outputs. On ggml types the pseudo-quantizer of the search is the type's own quantizer, with the
// importance of the (scaled) inputs, and the norms' new values go into the GGUF, which stays a plain
// llama GGUF.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/base/thread_pool.h"
#include "lowbit/formats/gguf_reader.h"
#include "lowbit/pipeline/calibration.h"
#include "lowbit/pipeline/convert.h"
#include "lowbit/quant/linear_quant.h"

namespace lowbit {

enum class QuantizeMethod { kRtn, kGptq, kAwq };
Expected<QuantizeMethod> ParseQuantizeMethod(std::string_view name);
std::string_view QuantizeMethodName(QuantizeMethod m);

struct CalibratedOptions {
  QuantizeMethod method = QuantizeMethod::kGptq;
  CalibrationOptions calib;
  int threads = 0;
  bool show_progress = false;
  // Where the layer matrices go: the integer grid (folder output), or each tensor's ggml type.
  bool int_grid = false;
  LinearQuantSpec spec;                                        // int grid
  std::function<GgmlType(const std::string& name)> ggml_type;  // GGUF output
  // GPTQ
  double damp_percent = 0.01;
  bool act_order = false;
  bool static_groups = false;
  // AWQ
  bool awq_duo_scaling = true;
  bool awq_clip = true;
};

struct CalibratedTensor {
  GgmlType type = GgmlType::kF32;  // of `bytes`
  std::vector<uint8_t> bytes;      // GGUF output: the tensor, ready to write
  LinearQuantized grid;            // int-grid output
  std::vector<float> values;       // a float tensor the method changed (AWQ: norms) [rows][cols]
  bool has_grid = false;
  // Against the model's original weights: plain error statistics.
  double rmse = 0, max_abs_err = 0, sqnr_db = 0;
  std::string note;
};

struct CalibratedReport {
  int64_t tokens = 0;              // calibration tokens (nsamples x seqlen)
  double seconds_total = 0;
  double seconds_forward = 0;      // running the sublayers
  double seconds_stats = 0;        // Hessians / activation statistics
  double seconds_quantize = 0;     // GPTQ's factorization and column loop, AWQ's searches, RTN
  double flops_hessian = 0, flops_factor = 0, flops_update = 0;
  int damp_raises = 0;
};

class CalibratedModel {
 public:
  // Loads the plan's model (in memory, sharing the plan's mappings), draws the samples.
  static Expected<std::unique_ptr<CalibratedModel>> Start(const ConversionPlan& plan, CalibratedOptions options);
  ~CalibratedModel();

  int64_t n_layers() const;
  // The result for a layer tensor ("blk.N.attn_q.weight", ..., and "blk.N.{attn,ffn}_norm.weight"
  // when AWQ changed it), computing layers up to N first: tensors must be asked for in layer order.
  // nullptr when the method leaves the tensor as it is (embedding, output, final norm, unchanged
  // norms). Release() frees a result once written.
  Expected<const CalibratedTensor*> Get(const std::string& name);
  void Release(const std::string& name);
  // After the last layer: mean x^2 per column of the classifier's input over the calibration tokens
  // (the importance `quantize` gives output.weight's quantizer).
  Expected<std::vector<float>> OutputImportance();
  const CalibratedReport& report() const { return report_; }
  int threads() const;  // the threads it computes on

 private:
  CalibratedModel() = default;
  Status ProcessLayer(int64_t l);
  Status GptqLayer(int64_t l);
  Status AwqLayer(int64_t l);
  // Quantizes matrix m of the current layer from its float values (and, for GPTQ, the Hessian of its
  // input; for the others the per-column importance), leaves the dequantized values in the
  // calibrator's buffer and stores the result.
  Status FinishMatrix(int64_t l, LayerMatrix m, const std::vector<float>& original, std::vector<float>* hessian,
                      const float* importance);
  std::string Name(int64_t l, const char* what) const;
  void Stage(int64_t l, const char* what);

  CalibratedOptions o_;
  std::unique_ptr<GgufFile> file_;
  std::unique_ptr<LlamaModel> model_;
  std::unique_ptr<LayerCalibrator> cal_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<class Progress> progress_;
  int64_t next_layer_ = 0;
  int64_t stages_done_ = 0;
  std::map<std::string, CalibratedTensor> results_;
  CalibratedReport report_;
};

}  // namespace lowbit

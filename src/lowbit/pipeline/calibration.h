// Calibration for the quantizers that learn from activations (GPTQ, AWQ): draw token samples from a
// text, then run the model one decoder layer at a time over all of them.
//
// Samples: the text is tokenized once and cut into consecutive windows of `seqlen` tokens; `nsamples`
// distinct windows are chosen by a seeded shuffle (the same seed gives the same samples on every
// machine) and each starts with BOS when the vocabulary adds one (as lowbit's perplexity and
// imatrix chunks do, and as the model is used).
//
// LayerCalibrator keeps the hidden states entering the current layer for every sample
// ([nsamples][seqlen][n_embd] floats: the only activations held) and runs one sublayer of the current
// layer over them at a time, with whatever weights the model's views point at: a method swaps a
// layer's matrices for F32 copies (MakeLayerFloat), changes them between passes (true-sequential
// GPTQ quantizes q/k/v, then o, then gate/up, then down, each fed by the already-quantized ones), and
// Advance() moves the hidden states through the layer. The model is never copied: only the current
// layer's matrices exist as F32.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/model/llama.h"
#include "lowbit/tokenizer/vocab.h"

namespace lowbit {

struct CalibrationOptions {
  std::string text_path;
  int64_t nsamples = 128;
  int64_t seqlen = 512;  // lowered to the model's training context by the callers when longer
  uint64_t seed = 0;
};

// nsamples windows of seqlen tokens. Errors name the file and say how many windows it holds.
Expected<std::vector<std::vector<int32_t>>> DrawCalibrationSamples(const Vocab& vocab, const CalibrationOptions& o);

// The seven matrices of a decoder layer, in the order LlamaSession observes them.
enum class LayerMatrix { kQ = 0, kK, kV, kO, kGate, kUp, kDown };
inline constexpr std::array<LayerMatrix, 7> kLayerMatrices = {LayerMatrix::kQ,    LayerMatrix::kK,  LayerMatrix::kV,
                                                              LayerMatrix::kO,    LayerMatrix::kGate, LayerMatrix::kUp,
                                                              LayerMatrix::kDown};
// GGUF name suffix: "attn_q", ..., "ffn_down".
const char* LayerMatrixName(LayerMatrix m);
WeightView& LayerMatrixView(LlamaModel::Layer& layer, LayerMatrix m);
enum class Sublayer { kAttention, kFfn };

class LayerCalibrator {
 public:
  // `model` must be loaded whole (one rank) and outlive the calibrator.
  // The sublayers run on `pool` (shared with the method's own work, so no two pools spin against each other).
  LayerCalibrator(LlamaModel* model, std::vector<std::vector<int32_t>> samples, ThreadPool* pool);
  ~LayerCalibrator();

  int64_t n_samples() const { return static_cast<int64_t>(samples_.size()); }
  int64_t seqlen() const { return seqlen_; }
  int64_t n_tokens() const { return n_samples() * seqlen_; }
  LlamaModel& model() { return *model_; }

  // Points layer l's matrices at F32 copies of their values (dequantized from the stored type), which
  // Matrix() exposes for the method to change. FreeLayer() drops them (after the caller has pointed
  // the views elsewhere, or not: the views then dangle, so do it only once the layer is done).
  void MakeLayerFloat(int64_t l);
  std::span<float> Matrix(LayerMatrix m);  // of the layer made float last: [rows][cols]
  void FreeLayer();

  // Input rows of a matrix in one sample: x [seqlen][width].
  using InputFn = std::function<void(LayerMatrix m, const float* x, int64_t n, int64_t width)>;
  // Runs sublayer `part` of layer l over every sample with the current weights. For each sample,
  // `on_input` gets the input rows of each matrix of the part listed in `want` (once per distinct
  // input: q, k and v share theirs, as do gate and up: only the first listed of a shared input is
  // called), and `on_output` (if set) the block's output [seqlen][n_embd] with the sample's index.
  void Pass(int64_t l, Sublayer part, std::span<const LayerMatrix> want, const InputFn& on_input,
            const std::function<void(int64_t sample, const float* out)>& on_output = {});
  // hidden[s] += block(hidden[s]) for every sample: moves the states past sublayer `part` of layer l.
  void Advance(int64_t l, Sublayer part);
  // The hidden states entering the next sublayer to run, sample s: [seqlen][n_embd].
  const float* Hidden(int64_t s) const { return hidden_.data() + s * seqlen_ * model_->config().n_embd; }
  // All of them, to come back to (AWQ searches a layer's scales on its float inputs).
  const std::vector<float>& hidden() const { return hidden_; }
  void SetHidden(std::vector<float> h);
  // The classifier's input for sample s (the final norm of its hidden states): out [seqlen][n_embd].
  void FinalNorm(int64_t s, float* out) const;

 private:
  LlamaModel* model_;
  std::vector<std::vector<int32_t>> samples_;
  int64_t seqlen_;
  std::unique_ptr<LlamaSession> session_;
  std::vector<float> hidden_;  // [sample][token][n_embd]
  std::vector<float> out_;     // one sample's block output
  int64_t float_layer_ = -1;
  std::array<std::vector<float>, 7> float_;  // the current layer's matrices as F32
};

}  // namespace lowbit

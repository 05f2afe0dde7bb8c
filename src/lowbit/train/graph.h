// The llama forward and its backward for training, over `seqs` sequences of T tokens at positions
// 0..T-1 (one micro-batch). One forward for every use: what a weight is (F32 master, fake-quantized
// copy, frozen quantized base with a low-rank adapter) is described by its `Linear`, not by a
// second copy of the forward.
//
// A Linear's forward product runs on the engine's kernels (kernels/matvec.h MatMul, activations
// quantized as the engine quantizes them) when the weight is held quantized, so QAT and QLoRA train
// through the products `lowbit run` computes; F32 weights go through GemmF32. The backward's input
// gradient always uses the F32 values `w` (straight-through past the activation rounding), and
// parameter gradients are added to the buffers the Weights point to, so micro-batches accumulate.
//
// Memory: the activations of every layer for seqs * T rows (about 4E + 2Q + 2KV + 3F floats a row
// per layer, plus n_head * T attention probabilities), allocated once.
#pragma once

#include <cstdint>
#include <vector>

#include "lowbit/base/thread_pool.h"
#include "lowbit/kernels/matvec.h"
#include "lowbit/model/llama.h"
#include "lowbit/numeric/ggml_type.h"
#include "lowbit/train/ops.h"

namespace lowbit::train {

// A trainable low-rank update of one weight: y += scale * B (A x). A [rank][cols], B [rows][rank].
struct LoraParam {
  int64_t rank = 0;
  float scale = 1.0f;
  const float *a = nullptr, *b = nullptr;
  float *da = nullptr, *db = nullptr;  // gradients (added to); null: frozen
};

struct Linear {
  int64_t rows = 0, cols = 0;  // outputs, inputs
  // Held quantized (type not F32): the forward runs MatMul on these bytes.
  GgmlType type = GgmlType::kF32;
  const uint8_t* data = nullptr;
  uint64_t row_stride = 0;
  // The product's input map when the stored rows are padded (a grouped-integer weight whose groups do
  // not fill whole blocks): stored_cols entries, kernels/matvec.h MatMulArgs::x_map. Null: identity.
  const int32_t* x_map = nullptr;
  int64_t stored_cols = 0;
  const float* w = nullptr;   // [rows][cols] F32 values (the forward's when type is F32)
  float* dw = nullptr;        // += dY^T X; null: frozen
  const float* bias = nullptr;
  float* dbias = nullptr;
  const LoraParam* lora = nullptr;
};

struct Weights {
  const float* tok_embd = nullptr;  // [V][E] rows the embedding reads
  float* d_tok_embd = nullptr;
  const float* output_norm = nullptr;
  float* d_output_norm = nullptr;
  Linear output;
  struct Layer {
    const float *attn_norm = nullptr, *ffn_norm = nullptr;
    float *d_attn_norm = nullptr, *d_ffn_norm = nullptr;
    Linear wq, wk, wv, wo, gate, up, down;
  };
  std::vector<Layer> layers;
};

class Graph {
 public:
  Graph(const LlamaConfig& c, int64_t seqs, int64_t T, ThreadPool* pool);

  int64_t rows() const { return R_; }
  // tokens [seqs][T]; returns the logits [seqs * T][n_vocab].
  const float* Forward(const Weights& w, const int32_t* tokens);
  // The gradient of the loss with respect to the logits goes here before Backward.
  float* dlogits() { return dlogits_.data(); }
  // Backpropagates dlogits() through the last Forward, adding to the Weights' gradient buffers.
  void Backward(const Weights& w);

 private:
  struct Saved {  // one layer's activations
    std::vector<float> x, rstd1, xn1, q, k, v, probs, att, xmid, rstd2, xn2, g, u, h;
    std::vector<float> lora_t[7];  // A x of each adapted linear: q, k, v, o, gate, up, down
  };
  void LinearForward(const Linear& L, const float* x, float* y, std::vector<float>* lora_t);
  void LinearBackward(const Linear& L, const float* x, const float* dy, float* dx, bool accumulate_dx,
                      const std::vector<float>* lora_t);

  LlamaConfig c_;
  int64_t seqs_, T_, R_, qd_, kvd_;
  ThreadPool* pool_;
  MatMulScratch scratch_;
  RopeTable rope_;
  std::vector<int32_t> pos_, tokens_;
  std::vector<Saved> saved_;
  std::vector<float> xf_, rstdf_, xnf_, logits_, dlogits_, lora_out_t_;
  // Backward scratch.
  std::vector<float> dres_, dxn_, dq_, dk_, dv_, datt_, dg_, du_, dh_, tmp_, lora_tmp_, lora_dt_;
};

}  // namespace lowbit::train

// Llama-family decoder over GGUF weights of any type: token embedding, RMSNorm, RoPE ("normal"
// adjacent-pair layout), grouped-query attention with an F32 KV cache, SwiGLU FFN, tied or separate
// output. Hyperparameters come from GGUF metadata (`<arch>.*`).
//
// This is the reference forward (one token at a time, reference matvec kernel); batched prefill,
// SIMD kernels and the tensor-parallel layers come with the engine work (issue 4).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lowbit/base/aligned_buffer.h"
#include "lowbit/base/status.h"
#include "lowbit/base/thread_pool.h"
#include "lowbit/formats/gguf_reader.h"

namespace lowbit {

struct LlamaConfig {
  int64_t n_vocab = 0, n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, n_ff = 0, head_dim = 0;
  int64_t rope_dim = 0, n_ctx_train = 0;
  float rope_freq_base = 10000.0f;
  float rms_eps = 1e-5f;
};

struct WeightView {
  GgmlType type = GgmlType::kF32;
  const uint8_t* data = nullptr;
  int64_t rows = 0, cols = 0;  // rows = outputs, cols = inputs (GGUF dims[1], dims[0])
};

class LlamaModel {
 public:
  // The file must outlive the model (weights are views into its mapping).
  static Expected<LlamaModel> Load(const GgufFile& file);

  const LlamaConfig& config() const { return cfg_; }

  struct Layer {
    WeightView attn_norm, wq, wk, wv, wo, ffn_norm, gate, up, down;
  };
  WeightView token_embd, output_norm, output;
  std::vector<Layer> layers;

 private:
  LlamaConfig cfg_;
};

// One sequence's state: KV cache and scratch, allocated once; Forward() allocates nothing.
class LlamaSession {
 public:
  LlamaSession(const LlamaModel& model, int64_t n_ctx, int threads);

  // Runs token at position `pos` (0-based, <= previous pos + 1) and returns the logits (n_vocab).
  const float* Forward(int32_t token, int64_t pos);

  // Called with (weight name, input vector, length) before each weight matrix is applied
  // (output.weight excluded), e.g. to collect an importance matrix. Empty: no calls.
  using Observer = std::function<void(const std::string& weight, const float* x, int64_t n)>;
  void SetObserver(Observer o) { observer_ = std::move(o); }
  int64_t n_ctx() const { return n_ctx_; }

 private:
  void Attention(int64_t layer, int64_t pos);

  const LlamaModel& m_;
  LlamaConfig c_;
  int64_t n_ctx_;
  std::unique_ptr<ThreadPool> pool_;
  AlignedBuffer kv_;  // [layer][k|v][pos][n_head_kv * head_dim] floats
  std::vector<float> x_, xb_, norm_w_, q_, k_, v_, att_, hb_, hb2_, logits_, rope_cos_, rope_sin_;
  Observer observer_;
  std::vector<std::string> names_;  // [layer * 7 + k]: attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down
};

}  // namespace lowbit

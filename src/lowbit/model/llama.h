// Llama-family decoder over GGUF weights of any type: token embedding, RMSNorm, RoPE (llama.cpp's
// "normal" adjacent-pair layout, or NeoX halves for the architectures that use it), multi-head and
// grouped-query attention with an F32 or F16 KV cache, SwiGLU FFN, optional Q/K/V biases, tied or
// separate output. Hyperparameters come from GGUF metadata (`<arch>.*`).
//
// One forward for every architecture it knows (kArchitectures in llama_config.cc: llama, qwen, qwen2,
// qwen3, qwen2moe, qwen3moe, phi3, gemma, gemma2, gemma3): an architecture is a row of options plus the tensors that
// switch on the few operations it adds, all resolved at load time:
// - fused tensors (attn_qkv, attn_qkv.bias; phi3's ffn_up holding gate then up) are loaded as the
//   separate Q/K/V (gate/up) views of row ranges of one tensor, so the forward and the tensor-parallel
//   cut see separate weights;
// - per-head RMSNorm of q and k (attn_q_norm / attn_k_norm: qwen3, gemma3), post-attention and post-FFN
//   RMSNorm (gemma2/3), head size from attention.key_length (q width != n_embd);
// - RoPE frequency factors (rope_freqs: Llama 3.x; rope_factors_long/short: phi3, chosen by the
//   session's context against rope.scaling.original_context_length), linear scaling, attn factor;
// - GeGLU (tanh GELU) instead of SwiGLU, embeddings scaled by sqrt(n_embd), attention and final logit
//   soft-capping, sliding-window layers with their own RoPE base (gemma2/3), the query scale;
// - a mixture-of-experts FFN (qwen2moe, qwen3moe, llama with experts): model/moe.cc.
//
// Written for tensor parallelism: a model is loaded as one rank's shard (model/shard.h says how it is
// cut). Q/K/V, gate and up are column-parallel (the rank owns query heads with the KV heads they
// read, and a slice of the FFN width; no communication); attention output and down are row-parallel
// (the rank owns the matching input columns and the partial outputs are summed with
// Comm::AllReduceSum); the classifier is split by vocabulary rows and the logits all-gathered.
// Embedding and norms are replicated. With one rank (LocalComm) the shard is the whole model and the
// communication is a no-op. A rank may hold no attention or no FFN (fewer blocks than ranks): its
// part of that sum is zero.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "lowbit/base/aligned_buffer.h"
#include "lowbit/base/page_buffer.h"
#include "lowbit/base/status.h"
#include "lowbit/base/thread_pool.h"
#include "lowbit/formats/gguf_reader.h"
#include "lowbit/kernels/matvec.h"
#include "lowbit/model/moe.h"
#include "lowbit/model/shard.h"
#include "lowbit/parallel/comm.h"

namespace lowbit {

struct LlamaConfig {
  std::string arch;
  int64_t n_vocab = 0, n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, n_ff = 0, head_dim = 0;
  int64_t rope_dim = 0, n_ctx_train = 0;
  float rope_freq_base = 10000.0f;
  float rms_eps = 1e-5f;
  bool rope_neox = false;  // rotate (i, i + rope_dim/2) pairs instead of (2i, 2i + 1)
  // Options of the architectures beyond llama (defaults: llama's).
  float rope_freq_scale = 1.0f;    // 1 / rope.scaling.factor (linear scaling)
  float rope_attn_factor = 1.0f;   // rope.scaling.attn_factor: cos and sin are multiplied by it
  int64_t n_ctx_orig = 0;          // rope.scaling.original_context_length (phi3: long factors beyond it)
  float rope_freq_base_swa = 10000.0f;  // sliding-window layers' RoPE base (their scale is 1)
  int64_t n_swa = 0;               // sliding window in positions (0: none)
  std::vector<uint8_t> swa_layers; // [n_layer]: 1 where the layer attends within the window
  float attn_scale = 0.0f;         // scores = attn_scale * q.k (set to 1/sqrt(head_dim) unless the architecture says)
  float attn_softcap = 0.0f;       // > 0: scores = c * tanh(scores / c) before the softmax
  float final_softcap = 0.0f;      // > 0: logits = c * tanh(logits / c)
  float embd_scale = 1.0f;         // embeddings multiplied by it (gemma: sqrt(n_embd))
  bool ffn_gelu = false;           // GeGLU (tanh GELU) instead of SwiGLU
  // Mixture of experts (every layer's FFN when n_expert > 0): a router picks n_expert_used of
  // n_expert experts per token (softmax, top-k, weights normalized to sum 1 when
  // expert_weights_norm), each a SwiGLU FFN of n_ff_exp columns; plus a shared expert of n_ff_shexp
  // columns gated by sigmoid(w . x) when n_ff_shexp > 0 (qwen2moe).
  int64_t n_expert = 0, n_expert_used = 0, n_ff_exp = 0, n_ff_shexp = 0;
  bool expert_weights_norm = false;
  bool moe() const { return n_expert > 0; }
  // The FFN width the shard plan cuts: an expert's when the FFN is a mixture of experts.
  int64_t ff_width() const { return moe() ? n_ff_exp : n_ff; }
};

// The architectures LlamaModel runs, comma-separated (for messages).
std::string KnownArchitectures();

// A low-rank update of a weight (a LoRA adapter): after the weight's product, y += scale * B (A x),
// as llama.cpp applies adapters. F32, row-major: a [rank][cols], b [rows][rank]. Whoever attaches
// updates to a model owns their memory (train/lora_file.h attaches adapter files).
struct LowRankUpdate {
  const float* a = nullptr;
  const float* b = nullptr;
  int64_t rank = 0;
  float scale = 1.0f;
};

// A weight matrix, or one rank's block of it: `rows` rows of `cols` elements, `row_stride` bytes
// apart (a row-parallel shard is a column range of each full row).
struct WeightView {
  GgmlType type = GgmlType::kF32;
  const uint8_t* data = nullptr;
  int64_t rows = 0, cols = 0;  // rows = outputs, cols = inputs (GGUF dims[1], dims[0])
  uint64_t row_stride = 0;
  // The product's input map and input width (MatMulArgs::x_map, x_stride; kernels/matvec.h): for
  // weights stored with their columns regrouped or padded (GPTQ act-order, rows padded to whole
  // blocks), cols is the stored width and x_stride the width of the input rows. nullptr / 0: plain.
  const int32_t* x_map = nullptr;
  int64_t x_stride = 0;
  std::span<const LowRankUpdate> updates;  // applied after the product, in order; empty: none
  float outlier_threshold = 0.0f;  // LLM.int8 types: MatMulArgs::outlier_threshold (kInt8ThresholdKey)
};

// The metadata key of an in-memory model (pipeline/model_source.h, a bitsandbytes 8-bit folder) that
// gives its LLM.int8 weights (I8R32 / I8R256) their outlier threshold (kernels/dot_int8.h); absent: 0.
inline constexpr const char* kInt8ThresholdKey = "lowbit.int8_threshold";

struct LoadOptions {
  int rank = 0, ranks = 1;
  // Where this rank's weights live. kView: views into the GgufFile's bytes (its mapping, or the
  // memory that holds them), which must outlive the model. kCopy: only this rank's bytes, read by
  // pread from the file (copied where the tensors are in memory) into memory the model owns, in
  // 2 MiB pages where the kernel has them, rows ImageRowStep apart (model/shard.h). kAuto: kCopy
  // where the file asks for its weights in memory (GgufFile::in_memory), else kView.
  enum class Weights { kAuto, kView, kCopy };
  Weights weights = Weights::kAuto;
  // --tp-send-weights: rank 0 reads every rank's bytes and sends them over `stream`; the other
  // ranks receive theirs (their GgufFile may be a header alone, GgufFile::ParseHeader). Collective
  // over `stream`; implies kCopy.
  Comm* stream = nullptr;
};

class LlamaModel {
 public:
  // Loads rank `rank` of `ranks` (the whole model when ranks == 1) as views into the file.
  static Expected<LlamaModel> Load(const GgufFile& file, int rank = 0, int ranks = 1);
  static Expected<LlamaModel> Load(const GgufFile& file, const LoadOptions& o);

  const LlamaConfig& config() const { return cfg_; }
  int rank() const { return plan_.rank; }
  int ranks() const { return plan_.ranks; }
  const ShardPlan& plan() const { return plan_; }
  // This rank's heads, KV heads and FFN width.
  int64_t local_heads() const { return plan_.heads.count; }
  int64_t local_kv_heads() const { return plan_.kv_heads.count; }
  int64_t local_ff() const { return plan_.ff.count; }  // of each expert, in a mixture of experts
  int64_t local_ff_shexp() const { return plan_.ff_shexp.count; }
  // Bytes of weights this model owns (kCopy: this rank's image; 0 for views).
  uint64_t owned_bytes() const { return image_.size(); }
  // Identifies the model (configuration, tensor names, types and shapes, norm weights), so that
  // ranks can check they loaded the same one; and a short description of it for messages.
  uint64_t fingerprint() const { return fingerprint_; }
  const std::string& description() const { return description_; }
  // True when the model computes nothing beyond llama's operations (RoPE of either layout, biases and
  // fused tensors allowed): what train/'s forward and backward implement.
  bool PlainLlama() const;

  struct Layer {
    WeightView attn_norm, wq, wk, wv, wo, ffn_norm, gate, up, down;
    const float *bq = nullptr, *bk = nullptr, *bv = nullptr;  // this rank's slice, when present
    // Present (data not null) only where the architecture has them: [head_dim] per-head norms of q
    // and k before RoPE; [n_embd] norms of the attention and FFN outputs before the residual add.
    WeightView q_norm, k_norm, attn_post_norm, ffn_post_norm;
    // A mixture-of-experts FFN (gate, up, down empty): the router [n_expert][n_embd], whole on every
    // rank; each expert's gate/up/down cut like a dense FFN to this rank's part of the expert width;
    // the shared expert, where the model has one (data not null), and its gate vector [1][n_embd].
    WeightView router;
    std::vector<WeightView> gate_exps, up_exps, down_exps;
    WeightView shexp_gate_inp, shexp_gate, shexp_up, shexp_down;
  };
  WeightView token_embd, output_norm, output;  // output: this rank's vocabulary rows
  // RoPE frequency factors ([rope_dim / 2], theta_i divided by them), when the file has them:
  // rope_freqs (Llama 3.x), rope_factors_long / _short (phi3).
  const float *rope_freqs = nullptr, *rope_long = nullptr, *rope_short = nullptr;
  std::vector<Layer> layers;

 private:
  LlamaConfig cfg_;
  ShardPlan plan_;
  PageBuffer image_;
  std::vector<std::shared_ptr<const GroupedPick>> picks_;  // the repacked weights' input maps (WeightView::x_map)
  uint64_t fingerprint_ = 0;
  std::string description_;
};

struct SessionOptions {
  int64_t n_ctx = 512;
  int threads = 1;
  int64_t max_batch = 512;  // tokens per prefill step (longer prompts are split)
  bool kv_f16 = false;      // F16 KV cache (half the memory; llama.cpp's default)
  Comm* comm = nullptr;     // nullptr: a LocalComm (one rank)
  int n_seq = 1;            // sequences (slots) the KV cache holds, n_ctx positions each
  // A token's logits independent of the batch it runs in (MatMulArgs::batch_invariant); the server
  // sets it so that batching changes no token. Off, short prompts may take other (faster) kernels.
  bool batch_invariant = false;
  ThreadPool* pool = nullptr;  // nullptr: a pool of `threads` of its own; else this one (shared with the caller's other work)
};

// One token of a multi-sequence batch (LlamaSession::ForwardBatch).
struct BatchToken {
  int32_t token = 0;
  int32_t seq = 0;      // KV slot, < SessionOptions::n_seq
  int64_t pos = 0;      // position in its sequence, < n_ctx
  bool logits = false;  // return this token's logits
};

// The state of n_seq sequences: KV cache and scratch, allocated once; Forward() and ForwardBatch()
// allocate nothing after the first call of a given size.
class LlamaSession {
 public:
  LlamaSession(const LlamaModel& model, const SessionOptions& o);
  LlamaSession(const LlamaModel& model, int64_t n_ctx, int threads);

  // Runs `tokens` at positions pos0, pos0 + 1, ... (pos0 <= previous end) as one batch and
  // returns the logits: n_vocab floats of the last token, or of every token ([n][n_vocab]) when
  // `all_logits`.
  const float* Forward(std::span<const int32_t> tokens, int64_t pos0, bool all_logits = false);
  const float* Forward(int32_t token, int64_t pos) { return Forward(std::span<const int32_t>(&token, 1), pos); }

  // Continuous batching: tokens of any sequences in one forward. The weight products run over all
  // of them together (the weights stream from memory once per step); RoPE uses each token's
  // position, its K/V go to (seq, pos), and its attention reads positions [0, pos] of its sequence,
  // so the positions before it must be in the cache already or earlier in this batch. A token's
  // logits are bit-equal to what it gets alone or in any other batch (the products are per row:
  // tests/model/batch_test.cc). Returns [k][n_vocab] for the k tokens with `logits` set, in order.
  // Batches longer than max_batch run as consecutive steps.
  const float* ForwardBatch(std::span<const BatchToken> batch);
  int n_seq() const { return n_seq_; }
  // Switches SessionOptions::batch_invariant between calls (speculative decoding prefills with the
  // kernels plain decoding uses, then verifies drafts with batch-invariant ones, whose rows equal a
  // one-token decode's). Needs no other scratch: an invariant product takes the GEMM in a subset of
  // the cases the other does.
  void set_batch_invariant(bool on) { batch_invariant_ = on; }

  // Called with (weight name, input vector, length) for each token before each weight matrix is
  // applied (output.weight excluded), e.g. to collect an importance matrix. Empty: no calls.
  using Observer = std::function<void(const std::string& weight, const float* x, int64_t n)>;
  void SetObserver(Observer o) { observer_ = std::move(o); }
  int64_t n_ctx() const { return n_ctx_; }
  int64_t max_batch() const { return max_batch_; }
  static const size_t kLinearJobBytes;  // what one product's entry of a mixture-of-experts step takes

  // Calibration access (pipeline/: GPTQ, AWQ): one sublayer of decoder layer `layer` alone, on n
  // hidden states x [n][n_embd] at positions 0..n-1 of sequence 0 (n <= max_batch()): out
  // [n][n_embd] is the attention block's output (RMSNorm, Q/K/V, RoPE, attention over these n
  // tokens, output projection) or the FFN block's (RMSNorm, gate/up, SwiGLU, down), before the
  // residual add, i.e. the layer computes x + a, then (x + a) + f. The observer sees the inputs of
  // the sublayer's matrices. Uses the layer's current weights (the pipeline swaps views between calls).
  void AttentionBlock(int64_t layer, const float* x, int64_t n, float* out) { SublayerBlock(layer, true, x, n, out); }
  void FfnBlock(int64_t layer, const float* x, int64_t n, float* out) { SublayerBlock(layer, false, x, n, out); }
  // The classifier's input: the final RMSNorm of n hidden states (out may not alias x).
  void OutputNorm(const float* x, int64_t n, float* out) const;

 private:
  // Runs batch_[0, n); logits of the rows in want_[0, n_want) to `logits`.
  void Step(int64_t n, int64_t n_want, float* logits);
  // y = x W^T (+ bias) for n tokens; Linears runs several in one hand-off to the thread pool.
  struct LinearJob {
    const WeightView* w;
    const float* x;
    float* y;
    const float* bias;
    int64_t n = 0;  // tokens through this product; 0: the call's n
  };
  void Linears(std::initializer_list<LinearJob> jobs, int64_t n) { Linears(std::span<const LinearJob>(jobs.begin(), jobs.size()), n); }
  void Linears(std::span<const LinearJob> jobs, int64_t n);
  void Linear(const WeightView& w, const float* x, int64_t n, float* y, const float* bias = nullptr) { Linears({{&w, x, y, bias}}, n); }
  void LowRank(const WeightView& w, const LowRankUpdate& u, const float* x, int64_t n, float* y);
  void Attention(int64_t layer, int64_t n);
  void StoreKv(int64_t layer, int64_t n);
  size_t KvOffset(int64_t layer, int kv, int32_t seq) const;  // bytes to (layer, k|v, seq, pos 0)
  void SwiGlu(int64_t count);  // hb_ = act(hb_) * hb2_ over the first count values (SiLU or GELU)
  void Rope(float* vec, int64_t width, int64_t heads, int64_t n, int table);  // at batch_[b].pos
  void HeadNorm(float* vec, int64_t width, int64_t heads, int64_t n, const WeightView& w);  // per-head RMSNorm
  void NormInPlace(float* v, int64_t n, const WeightView& w);  // v[b] = RMSNorm(v[b]) for n tokens of n_embd
  void Observe(int64_t layer, int k, const float* v, int64_t width, int64_t n);
  void NormAll(const WeightView& w, int64_t n);  // xb_ = RMSNorm(x_) for n tokens
  // proj_ = the attention (FFN) block's output for x_ (tokens batch_[0, n)), summed over ranks; x_ is not changed.
  void AttentionPart(int64_t layer, int64_t n);
  void FfnPart(int64_t layer, int64_t n);
  // The mixture-of-experts FFN (model/moe.cc): proj_ = this rank's part of it for xb_.
  void MoeFfn(int64_t layer, int64_t n);
  void AddProj(int64_t n);  // x_ += proj_
  void SublayerBlock(int64_t layer, bool attention, const float* x, int64_t n, float* out);

  const LlamaModel& m_;
  LlamaConfig c_;
  int64_t n_ctx_, max_batch_;
  int n_seq_;
  bool batch_invariant_;
  bool kv_f16_;
  int64_t q_dim_, kv_dim_;  // this rank's widths
  std::unique_ptr<ThreadPool> own_pool_;
  ThreadPool* pool_;
  std::unique_ptr<Comm> local_comm_;
  Comm* comm_;
  MatMulScratch mm_scratch_;
  AlignedBuffer kv_;  // [layer][k|v][seq][pos][kv_dim] in F32 or F16
  std::vector<BatchToken> batch_;  // [max_batch]: the step's tokens
  std::vector<int64_t> want_;      // [max_batch]: rows whose logits are returned
  std::vector<float> x_, xb_, q_, k_, v_, att_out_, hb_, hb2_, proj_, logits_;
  // Mixture of experts: router logits [batch][n_expert]; each (token, expert) pair's choice and
  // gathered row [batch * used]; the per-expert gathered inputs xe_ and outputs ye_ [batch * used]
  // [n_embd]; each expert's first row [n_expert + 1] then its cursor [n_expert]; the step's products.
  std::vector<float> router_, xe_, ye_;
  std::vector<ExpertChoice> route_;
  std::vector<int64_t> expert_rows_;
  std::vector<LinearJob> expert_jobs_;  // [2 * n_expert] reserved
  std::vector<float> rope_cos_, rope_sin_;  // [table][pos][rope_dim / 2]: table 0 global, 1 sliding-window layers
  SwiGluFn glu_ = nullptr;                  // the FFN's gating kernel (SwiGLU or GeGLU)
  std::vector<float> lora_t_, lora_z_;  // low-rank updates' A x and B (A x); grow on first use
  std::vector<float> part_logits_;      // this rank's vocabulary rows of the logits (several ranks)
  std::vector<int64_t> vocab_counts_;   // rows per rank
  void Classify(int64_t n, float* logits);
  Observer observer_;
  std::vector<std::string> names_;  // [layer * 7 + k]: attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down
};

}  // namespace lowbit

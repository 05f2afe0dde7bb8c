// The speed model behind `lowbit advise`, and the one `lowbit plan` (tensor parallelism over MPI)
// uses too: one place for both, so a prediction means the same thing wherever it is printed.
//
// Decode (one token): every weight matrix of the rank's shard is read once, at the rate the kernel
// table streams that weight type on the machine (measured: MachineSpeed::types[t].stream_gbps, at
// the thread count used); the K/V cache up to the token's position is read by attention at the
// roofline of the probe's bandwidth and the attention kernel's arithmetic rate; each product handed
// to the thread pool costs a fixed hand-off time; a fixed time per token and per layer (measured:
// MachineSpeed::token_us, layer_us) covers the rest of a step (norms, RoPE, wake-ups). Prompt processing (a batch of tokens) is
// the sum over the step's products, each as long as a product of its own shape (type, rows,
// columns, tokens) was measured to take on this machine (MachineSpeed::product_s: advise's prompt
// probe times them at a model's own shapes), plus each layer's attention over the prompt, likewise
// measured at the model's shape (attention_s); a shape not measured (a described machine, the
// ranking of named shapes) takes its multiply-adds at the type's GEMM rate and the attention
// kernel's rate. The classifier runs for the last token only (a prompt wants its logits). Tensor
// parallel over N ranks adds, per token, 2 all-reduces per layer of the hidden state (alpha-beta:
// the faster of recursive doubling and a ring, as MPI chooses) and the broadcast of the token.
//
// Inputs are what the model code reads (ModelWork comes from a loaded LlamaModel: one rank's
// shard, from a real file or from a header alone, GgufFile::FromHeader), so a new weight type, a
// classifier split or a new product shows up here without a second description of the model.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include <nlohmann/json.hpp>

#include "lowbit/model/llama.h"
#include "lowbit/numeric/ggml_type.h"

namespace lowbit {

// One prefill product as the engine runs it: `batch` tokens through `rows` x `cols` of `type`.
struct ProductShape {
  GgmlType type = GgmlType::kF32;
  int64_t rows = 0, cols = 0, batch = 0;
  auto operator<=>(const ProductShape&) const = default;
};

// One layer's attention over a prompt step: `tokens` tokens at positions start .. start + tokens - 1
// (each reads the cache up to its own position), `kv_heads` KV heads each read by `group` query
// heads of `head_dim` values, the cache in F16 or F32.
struct AttentionShape {
  bool kv_f16 = false;
  int64_t kv_heads = 0, group = 0, head_dim = 0, start = 0, tokens = 0;
  auto operator<=>(const AttentionShape&) const = default;
};

// How fast the kernels handle one weight type on a machine.
struct TypeSpeed {
  double stream_gbps = 0;   // decode: weight bytes per second through MatMul with one token, all threads, from memory (GB/s)
  double gemm_gops = 0;     // prefill: 2 x multiply-adds per second through MatMul with a prompt's tokens, all threads (GOP/s)
  double stream1_gbps = 0;  // decode on one thread from memory (products too small to hand out)
  double cached_gbps = 0;   // decode, all threads, of a matrix of half the last-level cache read repeatedly (models that fit there)
};

struct MachineSpeed {
  int threads = 1;
  double bandwidth_gbps = 0;            // ReadBandwidthProbe (eval/bandwidth.h) at `threads`
  std::map<GgmlType, TypeSpeed> types;  // the weight types measured
  double attention_gflops = 0;          // the attention kernel (F32 cache) on cached rows, all threads
  double attention_f16_gflops = 0;      // the same on an F16 cache
  double handoff_us = 0;                // one product handed to the pool and waited for
  // A decode step's fixed costs outside the weight products, attention and hand-offs (norms, RoPE,
  // SwiGLU, residual adds, activation quantization, the pool's wake-ups after serial work, sampling's
  // copy of the logits): measured by running the engine's decode on synthetic models of 1 and 4
  // layers and taking what the rest of this model does not explain (speed_probe.cc).
  double token_us = 0;                  // per token
  double layer_us = 0;                  // per layer per token
  // Decode of a model streamed from memory, measured end to end, against what the stream rates,
  // hand-offs and fixed costs above predict for it (speed_probe.cc: a synthetic Llama 2 7B layer
  // with its classifier): the weight streaming of a real step (one product per matrix, per-layer
  // waits, a fluctuating memory system over many steps) reaches this fraction of the one-product
  // probe. Divides the streamed weights' time; 1 where not measured.
  double decode_efficiency = 1;
  uint64_t llc_bytes = 32u << 20;       // a model no larger is read from cache (speed_probe.cc)
  // Prefill at a model's own shapes (advise/prompt_probe.h), measured for the model being predicted:
  // the wall time of one product (activation conversion and hand-offs included) and of one layer's
  // attention. Not part of ToJson (they belong to a model, not to the machine).
  std::map<ProductShape, double> product_s;
  std::map<AttentionShape, double> attention_s;
  // A decode step's product groups (DecodeGroupsOf) as MatMulGroup runs them, one token, measured
  // for the model being predicted: the wall time of one group, its weights streamed from memory
  // (only a model larger than the cache has them). Not part of ToJson.
  std::map<std::vector<ProductShape>, double> group_s;

  // The speed of type t; a type not measured takes the measured type nearest in bits per weight
  // among those of its kind (block or plain). nullptr when nothing is measured.
  const TypeSpeed* Find(GgmlType t) const;
  nlohmann::json ToJson() const;
  static bool FromJson(const nlohmann::json& j, MachineSpeed* out);
};

// A product of a prefill step: `count` products a step (every layer's Q, ..., down) of rows x cols
// of `type`, each through `share` of the step's tokens (a mixture's expert: the tokens routed to
// it, n_expert_used / n_expert on average; 1 otherwise), or through one token (`last_token`: the
// classifier, for the last token's logits).
struct PromptProduct {
  GgmlType type = GgmlType::kF32;
  int64_t rows = 0, cols = 0;
  double count = 0, share = 1;
  bool last_token = false;
};

// What one token costs a model (one rank's shard), read from the loaded model.
struct ModelWork {
  std::map<GgmlType, double> threaded_bytes;  // decode: bytes of products handed to the pool, per type
  std::map<GgmlType, double> single_bytes;    // decode: bytes of products run on the calling thread, per type
  std::map<GgmlType, double> weight_macs;     // multiply-adds per token, per type
  double threaded_products = 0;  // pool hand-offs of a decode step's products (grouped products count once)
  std::vector<PromptProduct> prompt_products;  // a prefill step's products, one per distinct shape
  // A decode step's hand-offs: the products of each (Q/K/V, gate/up, ... as LlamaSession groups them;
  // batch 1) and how many times a step runs that group.
  struct DecodeGroup {
    std::vector<ProductShape> products;
    double count = 0;
  };
  std::vector<DecodeGroup> decode_groups;
  int threads = 1;
  int64_t n_layer = 0, n_embd = 0, q_heads = 0, kv_dim = 0, head_dim = 0;
  bool kv_f16 = false;

  double WeightBytes() const;
  // Bytes of K/V one token at `position` reads (the cache rows 0..position of every layer).
  double KvBytes(int64_t position) const;
  // Attention arithmetic of one token at `position` (2 operations per multiply-add, QK and AV).
  double AttentionOps(int64_t position) const;
};

// The work of `m` (this rank's shard) with a KV cache in F16 or F32, on `threads` threads: which
// products are handed to the pool follows MatMul's rule (kernels/matvec.h, kMinThreadedWork).
ModelWork WorkOf(const LlamaModel& m, bool kv_f16, int threads);

// A network between ranks: alpha (seconds per message) and bandwidth (bytes per second).
struct Network {
  double latency_s = 0;
  double bytes_per_s = 0;
};

// An all-reduce of `bytes` over `ranks` ranks: min(recursive doubling, ring). 0 for one rank.
double AllReduceSeconds(double bytes, int ranks, const Network& net);

// One decoded token at `position` (tokens already in the cache). Errors name a weight type the
// machine has no speed for.
Expected<double> DecodeSeconds(const ModelWork& w, const MachineSpeed& m, int64_t position);
// Mean tokens per second over `n` tokens decoded from `first` (llama-bench's tg128: first = 0).
Expected<double> DecodeTokensPerSecond(const ModelWork& w, const MachineSpeed& m, int64_t first, int64_t n);
// A prompt of n tokens from position 0, in steps of up to kPromptStep tokens as LlamaSession runs it.
Expected<double> PromptSeconds(const ModelWork& w, const MachineSpeed& m, int64_t n);
inline constexpr int64_t kPromptStep = 512;

// The shapes a prompt of n tokens runs (products of more than one token, and each step's attention),
// each once: what MachineSpeed::product_s and attention_s need for PromptSeconds to use measurements.
struct PromptShapes {
  std::vector<ProductShape> products;
  std::vector<AttentionShape> attention;
};
PromptShapes PromptShapesOf(const ModelWork& w, int64_t n);
// The distinct product groups of a decode step (ModelWork::decode_groups) of a model whose weights
// stream from memory (larger than m.llc_bytes; none for one read from cache, `streamed` false).
// With every group in m.group_s, DecodeSeconds sums their timings (hand-offs included) instead of
// the weight bytes at the stream rates over decode_efficiency.
struct DecodeGroups {
  std::vector<std::vector<ProductShape>> groups;
  bool streamed = true;
};
DecodeGroups DecodeGroupsOf(const ModelWork& w, const MachineSpeed& m);

// Tensor parallel decode over `ranks` ranks, each with machine `m` and one shard of work `rank_work`
// (the largest rank's: the others wait for it at every all-reduce): per-token seconds at `position`.
Expected<double> TensorParallelDecodeSeconds(const ModelWork& rank_work, const MachineSpeed& m, int ranks,
                                             const Network& net, int64_t position);

}  // namespace lowbit

// The speed model behind `lowbit advise`, and the one `lowbit plan` (tensor parallelism over MPI)
// uses too: one place for both, so a prediction means the same thing wherever it is printed.
//
// Decode (one token): every weight matrix of the rank's shard is read once, at the rate the kernel
// table streams that weight type on the machine (measured: MachineSpeed::types[t].stream_gbps, at
// the thread count used); the K/V cache up to the token's position is read by attention at the
// roofline of the probe's bandwidth and the attention kernel's arithmetic rate; each product handed
// to the thread pool costs a fixed hand-off time; a fixed time per token and per layer (measured:
// MachineSpeed::token_us, layer_us) covers the rest of a step (norms, RoPE, wake-ups). Prompt processing (a batch of tokens) is
// compute-bound: multiply-adds per weight type at the measured GEMM rate, plus attention. Tensor
// parallel over N ranks adds, per token, 2 all-reduces per layer of the hidden state (alpha-beta:
// the faster of recursive doubling and a ring, as MPI chooses) and the broadcast of the token.
//
// Inputs are what the model code reads (ModelWork comes from a loaded LlamaModel: one rank's
// shard, from a real file or from a header alone, GgufFile::FromHeader), so a new weight type, a
// classifier split or a new product shows up here without a second description of the model.
#pragma once

#include <cstdint>
#include <map>

#include <nlohmann/json.hpp>

#include "lowbit/model/llama.h"
#include "lowbit/numeric/ggml_type.h"

namespace lowbit {

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

  // The speed of type t; a type not measured takes the measured type nearest in bits per weight
  // among those of its kind (block or plain). nullptr when nothing is measured.
  const TypeSpeed* Find(GgmlType t) const;
  nlohmann::json ToJson() const;
  static bool FromJson(const nlohmann::json& j, MachineSpeed* out);
};

// What one token costs a model (one rank's shard), read from the loaded model.
struct ModelWork {
  std::map<GgmlType, double> threaded_bytes;  // decode: bytes of products handed to the pool, per type
  std::map<GgmlType, double> single_bytes;    // decode: bytes of products run on the calling thread, per type
  std::map<GgmlType, double> weight_macs;     // multiply-adds per token, per type
  double threaded_products = 0;  // pool hand-offs of a decode step's products (grouped products count once)
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
// A prompt of n tokens run as one batch from position 0.
Expected<double> PromptSeconds(const ModelWork& w, const MachineSpeed& m, int64_t n);

// Tensor parallel decode over `ranks` ranks, each with machine `m` and one shard of work `rank_work`
// (the largest rank's: the others wait for it at every all-reduce): per-token seconds at `position`.
Expected<double> TensorParallelDecodeSeconds(const ModelWork& rank_work, const MachineSpeed& m, int ranks,
                                             const Network& net, int64_t position);

}  // namespace lowbit

// What a LlamaSession allocates, computed from the loaded model's shapes and the session's options
// alone. This is the one definition of those sizes: LlamaSession's constructor sizes its buffers
// from it, and the advisor (advise/) predicts memory with it from a model known only by its header
// (GgufFile::FromHeader), so the two cannot drift. A change to what a session holds (a new buffer,
// several sequences, another cache type) is a change here first.
//
// Everything below is allocated and zero-filled when the session is built (so it is resident from
// the start), except the per-thread attention scratch, which each thread allocates on its first
// attention call and keeps (thread_local), and the logits of more than one token, which Forward
// allocates the first time it is asked for all logits.
#pragma once

#include <cstdint>

#include "lowbit/kernels/dot.h"
#include "lowbit/model/llama.h"

namespace lowbit {

struct SessionSizes {
  int64_t n_ctx = 0;
  int n_seq = 1;      // sequences (slots), each with n_ctx positions of KV cache
  int64_t batch = 0;  // tokens per forward step: max_batch clamped to [1, n_ctx * n_seq]
  int threads = 1;    // the pool's size (SessionOptions::threads, 0 = all hardware threads)
  // This rank's widths, in floats per token.
  int64_t embd = 0, q_dim = 0, kv_dim = 0, ff = 0, vocab = 0;
  // Mixture of experts: experts, and (token, expert) rows of a step (batch * experts used).
  int64_t n_expert = 0, expert_rows = 0;
  int64_t rope_half = 0;       // RoPE table entries per position
  int64_t rope_tables = 1;     // 2 where sliding-window layers have their own RoPE (gemma2/3)
  int64_t attention_group = 1; // query heads per KV head
  uint64_t kv_bytes = 0;       // [layer][k|v][seq][pos][kv_dim] in F32 or F16
  // MatMulScratch at its largest: the converted activations of one full step through any of the
  // model's products (twice that where the kernel table's GEMM reorders them), or of one token's
  // grouped Q/K/V or gate/up products, whichever is larger.
  uint64_t matmul_scratch_bytes = 0;

  // Float activations of one step: x, xb, proj [batch][embd]; q, att_out [batch][q_dim];
  // k, v [batch][kv_dim]; hb, hb2 [batch][ff]; and the step's tokens (BatchToken) and logit rows.
  // A mixture of experts adds the router's logits [batch][n_expert], each row's expert choice
  // (ExpertChoice), its gathered input and output [expert_rows][embd], and the per-expert row
  // counts and product list.
  uint64_t ActivationBytes() const;
  uint64_t RopeBytes() const { return uint64_t{2} * static_cast<uint64_t>(rope_tables * n_ctx * rope_half) * 4; }
  // The logits buffer after Forward was asked for all logits of `tokens` tokens (1: the last only).
  uint64_t LogitsBytes(int64_t tokens = 1) const;
  // Attention scores: group * n_ctx floats in each of the `threads` threads (thread_local, kept).
  uint64_t AttentionScratchBytes() const;
  // Everything, with the logits of `logits_tokens` tokens.
  uint64_t TotalBytes(int64_t logits_tokens = 1) const;
};

// The sizes for `model` with options `o`, the GEMM activation layouts taken from kernel table `k`.
SessionSizes PlanSession(const LlamaModel& model, const SessionOptions& o, const DotKernels& k);
// With the active kernel table (what a session built now uses).
SessionSizes PlanSession(const LlamaModel& model, const SessionOptions& o);

}  // namespace lowbit

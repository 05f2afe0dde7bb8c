// The operations of the llama forward as forward/backward pairs on F32 rows, for training.
//
// Every forward computes what model/llama.cc computes (the same RMSNorm with a double sum, the same
// RoPE table and rotation, softmax::Exp and softmax::Silu), so a trained model's forward is the
// engine's; every backward is the exact derivative of its forward (finite-difference checks in
// tests/train/ops_test.cc). A backward writes the input gradient (overwriting, or adding where it
// says so) and adds to parameter gradients, so gradients of several micro-batches accumulate.
// Rows are split over the thread pool; pool may be null.
#pragma once

#include <cstdint>
#include <vector>

#include "lowbit/base/thread_pool.h"

namespace lowbit::train {

// ---- RMSNorm: y = x * rstd * w per row, rstd = 1 / sqrt(mean(x^2) + eps).
void RmsNormForward(const float* x, const float* w, int64_t rows, int64_t n, float eps, float* y, float* rstd,
                    ThreadPool* pool);
// dx (+)= d/dx; dw += sum over rows (dw null: frozen).
void RmsNormBackward(const float* x, const float* w, const float* rstd, const float* dy, int64_t rows, int64_t n,
                     float* dx, bool accumulate_dx, float* dw, ThreadPool* pool);

// ---- RoPE over rows of `heads` heads of `hd` values; the first rope_dim values of a head rotate,
// as (2i, 2i + 1) pairs, or (i, i + rope_dim / 2) with neox. Row r is at position pos[r].
struct RopeTable {
  int64_t rope_dim = 0;
  bool neox = false;
  std::vector<float> cos, sin;  // [pos][rope_dim / 2]
  // theta_i = pos * base^(-2i / rope_dim), computed as model/llama.cc computes it.
  static RopeTable Make(int64_t n_pos, int64_t rope_dim, float base, bool neox);
};
void RopeForward(const RopeTable& t, float* x, int64_t rows, int64_t heads, int64_t hd, const int32_t* pos);
// The transpose: rotates by -theta (in place on the gradient).
void RopeBackward(const RopeTable& t, float* dx, int64_t rows, int64_t heads, int64_t hd, const int32_t* pos);

// ---- Causal attention with grouped-query heads over `seqs` sequences of T tokens each.
// q, out: [seqs * T][n_head * hd]; k, v: [seqs * T][n_kv * hd]; query head h reads KV head
// h / (n_head / n_kv). probs: [seqs][n_head][T][T], the softmax kept for the backward (entries past
// the diagonal are zero).
struct AttnShape {
  int64_t seqs = 1, T = 0, n_head = 0, n_kv = 0, hd = 0;
  float scale = 1.0f;
};
void AttentionForward(const AttnShape& s, const float* q, const float* k, const float* v, float* out, float* probs,
                      ThreadPool* pool);
// Writes dq, dk, dv (overwrites).
void AttentionBackward(const AttnShape& s, const float* q, const float* k, const float* v, const float* probs,
                       const float* dout, float* dq, float* dk, float* dv, ThreadPool* pool);

// ---- SwiGLU: h = SiLU(g) * u.
void SwiGluForward(const float* g, const float* u, int64_t n, float* h, ThreadPool* pool);
void SwiGluBackward(const float* g, const float* u, const float* dh, int64_t n, float* dg, float* du, ThreadPool* pool);

// ---- Embedding: x[r] = table[token[r]]; backward adds dx[r] to dtable[token[r]].
void EmbeddingForward(const float* table, const int32_t* tokens, int64_t rows, int64_t n, float* x);
void EmbeddingBackward(const float* dx, const int32_t* tokens, int64_t rows, int64_t n, float* dtable);

// ---- Bias: y[r] += b; db += sum over rows of dy.
void AddBias(const float* b, int64_t rows, int64_t n, float* y);
void BiasBackward(const float* dy, int64_t rows, int64_t n, float* db);

// ---- Losses over rows of logits [rows][V]. Each returns the summed loss (nats) of the scored rows
// and writes dlogits = grad_scale * d(loss)/d(logits) (zero for rows not scored).
// Cross-entropy: -log softmax(logits)[target]; rows with target < 0 are not scored.
double CrossEntropy(const float* logits, const int32_t* targets, int64_t rows, int64_t V, float grad_scale,
                    float* dlogits, ThreadPool* pool);
// Distillation: KL(teacher || student) = sum_v p_t (log p_t - log p_s), with the teacher given as
// log-probabilities [rows][V]; rows whose mask entry is 0 are not scored (mask null: all).
double KlDistill(const float* logits, const float* teacher_logp, const uint8_t* mask, int64_t rows, int64_t V,
                 float grad_scale, float* dlogits, ThreadPool* pool);
// log softmax of each row into out (teacher distributions).
void LogSoftmaxRows(const float* logits, int64_t rows, int64_t V, float* out, ThreadPool* pool);

}  // namespace lowbit::train

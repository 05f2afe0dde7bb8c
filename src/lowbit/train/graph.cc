#include "lowbit/train/graph.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "lowbit/base/check.h"
#include "lowbit/kernels/gemm.h"

namespace lowbit::train {
namespace {

void Resize(std::vector<float>& v, int64_t n) { v.assign(static_cast<size_t>(n), 0.0f); }

}  // namespace

Graph::Graph(const LlamaConfig& c, int64_t seqs, int64_t T, ThreadPool* pool)
    : c_(c), seqs_(seqs), T_(T), R_(seqs * T), qd_(c.n_head * c.head_dim), kvd_(c.n_head_kv * c.head_dim), pool_(pool) {
  LOWBIT_CHECK(seqs >= 1 && T >= 1);
  rope_ = RopeTable::Make(T, c.rope_dim, c.rope_freq_base, c.rope_neox);
  pos_.resize(static_cast<size_t>(R_));
  for (int64_t r = 0; r < R_; ++r) pos_[r] = static_cast<int32_t>(r % T);
  const int64_t E = c.n_embd, F = c.n_ff, R = R_;
  saved_.resize(static_cast<size_t>(c.n_layer));
  for (Saved& s : saved_) {
    Resize(s.x, R * E);
    Resize(s.rstd1, R);
    Resize(s.xn1, R * E);
    Resize(s.q, R * qd_);
    Resize(s.k, R * kvd_);
    Resize(s.v, R * kvd_);
    Resize(s.probs, seqs * c.n_head * T * T);
    Resize(s.att, R * qd_);
    Resize(s.xmid, R * E);
    Resize(s.rstd2, R);
    Resize(s.xn2, R * E);
    Resize(s.g, R * F);
    Resize(s.u, R * F);
    Resize(s.h, R * F);
  }
  Resize(xf_, R * E);
  Resize(rstdf_, R);
  Resize(xnf_, R * E);
  Resize(logits_, R * c.n_vocab);
  Resize(dlogits_, R * c.n_vocab);
  const int64_t widest = std::max({E, qd_, F, c.n_vocab});
  Resize(dres_, R * E);
  Resize(dxn_, R * E);
  Resize(dq_, R * qd_);
  Resize(dk_, R * kvd_);
  Resize(dv_, R * kvd_);
  Resize(datt_, R * qd_);
  Resize(dg_, R * F);
  Resize(du_, R * F);
  Resize(dh_, R * F);
  Resize(tmp_, R * widest);
}

void Graph::LinearForward(const Linear& L, const float* x, float* y, std::vector<float>* lora_t) {
  const int64_t R = R_;
  if (L.type != GgmlType::kF32 && L.data != nullptr) {
    MatMul(MatMulArgs{.type = L.type, .w = L.data, .rows = L.rows, .cols = L.x_map ? L.stored_cols : L.cols, .row_stride = L.row_stride,
                      .x = x, .x_map = L.x_map, .x_stride = L.x_map ? L.cols : 0, .batch = R, .y = y},
           pool_, &scratch_);
  } else {
    GemmF32({.m = R, .n = L.rows, .k = L.cols, .a = x, .lda = L.cols, .b = L.w, .ldb = L.cols, .b_trans = true, .c = y,
             .ldc = L.rows}, pool_);
  }
  if (L.bias != nullptr) AddBias(L.bias, R, L.rows, y);
  if (L.lora == nullptr) return;
  const LoraParam& a = *L.lora;
  // t = x A^T; y += (scale t) B^T
  lora_t->resize(static_cast<size_t>(R * a.rank));
  GemmF32({.m = R, .n = a.rank, .k = L.cols, .a = x, .lda = L.cols, .b = a.a, .ldb = L.cols, .b_trans = true,
           .c = lora_t->data(), .ldc = a.rank}, pool_);
  lora_tmp_.resize(static_cast<size_t>(R * a.rank));
  for (int64_t i = 0; i < R * a.rank; ++i) lora_tmp_[i] = a.scale * (*lora_t)[i];
  GemmF32({.m = R, .n = L.rows, .k = a.rank, .a = lora_tmp_.data(), .lda = a.rank, .b = a.b, .ldb = a.rank, .b_trans = true,
           .c = y, .ldc = L.rows, .accumulate = true}, pool_);
}

void Graph::LinearBackward(const Linear& L, const float* x, const float* dy, float* dx, bool accumulate_dx,
                           const std::vector<float>* lora_t) {
  const int64_t R = R_;
  // dX (+)= dY W
  GemmF32({.m = R, .n = L.cols, .k = L.rows, .a = dy, .lda = L.rows, .b = L.w, .ldb = L.cols, .c = dx, .ldc = L.cols,
           .accumulate = accumulate_dx}, pool_);
  // dW += dY^T X
  if (L.dw != nullptr) {
    GemmF32({.m = L.rows, .n = L.cols, .k = R, .a = dy, .lda = L.rows, .a_trans = true, .b = x, .ldb = L.cols, .c = L.dw,
             .ldc = L.cols, .accumulate = true}, pool_);
  }
  if (L.dbias != nullptr) BiasBackward(dy, R, L.rows, L.dbias);
  if (L.lora == nullptr) return;
  const LoraParam& a = *L.lora;
  const int64_t r = a.rank;
  // dB += dY^T (scale t)
  lora_tmp_.resize(static_cast<size_t>(R * r));
  for (int64_t i = 0; i < R * r; ++i) lora_tmp_[i] = a.scale * (*lora_t)[i];
  if (a.db != nullptr) {
    GemmF32({.m = L.rows, .n = r, .k = R, .a = dy, .lda = L.rows, .a_trans = true, .b = lora_tmp_.data(), .ldb = r,
             .c = a.db, .ldc = r, .accumulate = true}, pool_);
  }
  // dt = scale dY B; dA += dt^T X; dX += dt A
  lora_dt_.resize(static_cast<size_t>(R * r));
  GemmF32({.m = R, .n = r, .k = L.rows, .a = dy, .lda = L.rows, .b = a.b, .ldb = r, .c = lora_dt_.data(), .ldc = r}, pool_);
  for (int64_t i = 0; i < R * r; ++i) lora_dt_[i] *= a.scale;
  if (a.da != nullptr) {
    GemmF32({.m = r, .n = L.cols, .k = R, .a = lora_dt_.data(), .lda = r, .a_trans = true, .b = x, .ldb = L.cols, .c = a.da,
             .ldc = L.cols, .accumulate = true}, pool_);
  }
  GemmF32({.m = R, .n = L.cols, .k = r, .a = lora_dt_.data(), .lda = r, .b = a.a, .ldb = L.cols, .c = dx, .ldc = L.cols,
           .accumulate = true}, pool_);
}

const float* Graph::Forward(const Weights& w, const int32_t* tokens) {
  LOWBIT_CHECK(static_cast<int64_t>(w.layers.size()) == c_.n_layer);
  const int64_t E = c_.n_embd, R = R_, F = c_.n_ff;
  tokens_.assign(tokens, tokens + R);
  for (int64_t r = 0; r < R; ++r) LOWBIT_CHECK_MSG(tokens[r] >= 0 && tokens[r] < c_.n_vocab, "token {} out of range", tokens[r]);
  const AttnShape as{.seqs = seqs_, .T = T_, .n_head = c_.n_head, .n_kv = c_.n_head_kv, .hd = c_.head_dim,
                     .scale = 1.0f / std::sqrt(static_cast<float>(c_.head_dim))};
  float* x = saved_.empty() ? xf_.data() : saved_[0].x.data();
  EmbeddingForward(w.tok_embd, tokens, R, E, x);
  for (int64_t l = 0; l < c_.n_layer; ++l) {
    const Weights::Layer& L = w.layers[l];
    Saved& s = saved_[l];
    RmsNormForward(s.x.data(), L.attn_norm, R, E, c_.rms_eps, s.xn1.data(), s.rstd1.data(), pool_);
    LinearForward(L.wq, s.xn1.data(), s.q.data(), &s.lora_t[0]);
    LinearForward(L.wk, s.xn1.data(), s.k.data(), &s.lora_t[1]);
    LinearForward(L.wv, s.xn1.data(), s.v.data(), &s.lora_t[2]);
    RopeForward(rope_, s.q.data(), R, c_.n_head, c_.head_dim, pos_.data());
    RopeForward(rope_, s.k.data(), R, c_.n_head_kv, c_.head_dim, pos_.data());
    AttentionForward(as, s.q.data(), s.k.data(), s.v.data(), s.att.data(), s.probs.data(), pool_);
    LinearForward(L.wo, s.att.data(), tmp_.data(), &s.lora_t[3]);
    for (int64_t i = 0; i < R * E; ++i) s.xmid[i] = s.x[i] + tmp_[i];
    RmsNormForward(s.xmid.data(), L.ffn_norm, R, E, c_.rms_eps, s.xn2.data(), s.rstd2.data(), pool_);
    LinearForward(L.gate, s.xn2.data(), s.g.data(), &s.lora_t[4]);
    LinearForward(L.up, s.xn2.data(), s.u.data(), &s.lora_t[5]);
    SwiGluForward(s.g.data(), s.u.data(), R * F, s.h.data(), pool_);
    LinearForward(L.down, s.h.data(), tmp_.data(), &s.lora_t[6]);
    float* next = l + 1 < c_.n_layer ? saved_[l + 1].x.data() : xf_.data();
    for (int64_t i = 0; i < R * E; ++i) next[i] = s.xmid[i] + tmp_[i];
  }
  RmsNormForward(xf_.data(), w.output_norm, R, E, c_.rms_eps, xnf_.data(), rstdf_.data(), pool_);
  LinearForward(w.output, xnf_.data(), logits_.data(), &lora_out_t_);
  return logits_.data();
}

void Graph::Backward(const Weights& w) {
  const int64_t E = c_.n_embd, R = R_, F = c_.n_ff;
  const AttnShape as{.seqs = seqs_, .T = T_, .n_head = c_.n_head, .n_kv = c_.n_head_kv, .hd = c_.head_dim,
                     .scale = 1.0f / std::sqrt(static_cast<float>(c_.head_dim))};
  LinearBackward(w.output, xnf_.data(), dlogits_.data(), dxn_.data(), false, &lora_out_t_);
  RmsNormBackward(xf_.data(), w.output_norm, rstdf_.data(), dxn_.data(), R, E, dres_.data(), false, w.d_output_norm, pool_);
  for (int64_t l = c_.n_layer - 1; l >= 0; --l) {
    const Weights::Layer& L = w.layers[l];
    Saved& s = saved_[l];
    // x_{l+1} = xmid + down(h)
    LinearBackward(L.down, s.h.data(), dres_.data(), dh_.data(), false, &s.lora_t[6]);
    SwiGluBackward(s.g.data(), s.u.data(), dh_.data(), R * F, dg_.data(), du_.data(), pool_);
    LinearBackward(L.gate, s.xn2.data(), dg_.data(), dxn_.data(), false, &s.lora_t[4]);
    LinearBackward(L.up, s.xn2.data(), du_.data(), dxn_.data(), true, &s.lora_t[5]);
    RmsNormBackward(s.xmid.data(), L.ffn_norm, s.rstd2.data(), dxn_.data(), R, E, dres_.data(), true, L.d_ffn_norm, pool_);
    // xmid = x + wo(att)
    LinearBackward(L.wo, s.att.data(), dres_.data(), datt_.data(), false, &s.lora_t[3]);
    AttentionBackward(as, s.q.data(), s.k.data(), s.v.data(), s.probs.data(), datt_.data(), dq_.data(), dk_.data(), dv_.data(),
                      pool_);
    RopeBackward(rope_, dq_.data(), R, c_.n_head, c_.head_dim, pos_.data());
    RopeBackward(rope_, dk_.data(), R, c_.n_head_kv, c_.head_dim, pos_.data());
    LinearBackward(L.wq, s.xn1.data(), dq_.data(), dxn_.data(), false, &s.lora_t[0]);
    LinearBackward(L.wk, s.xn1.data(), dk_.data(), dxn_.data(), true, &s.lora_t[1]);
    LinearBackward(L.wv, s.xn1.data(), dv_.data(), dxn_.data(), true, &s.lora_t[2]);
    RmsNormBackward(s.x.data(), L.attn_norm, s.rstd1.data(), dxn_.data(), R, E, dres_.data(), true, L.d_attn_norm, pool_);
  }
  if (w.d_tok_embd != nullptr) EmbeddingBackward(dres_.data(), tokens_.data(), R, E, w.d_tok_embd);
}

}  // namespace lowbit::train

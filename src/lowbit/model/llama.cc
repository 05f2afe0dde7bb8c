#include "lowbit/model/llama.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "lowbit/base/check.h"
#include "lowbit/kernels/matvec.h"
#include "lowbit/numeric/dequant.h"

namespace lowbit {
namespace {

Status View(const GgufFile& g, const std::string& name, int64_t want_rows, int64_t want_cols, WeightView* out,
            bool required = true) {
  const GgufTensorInfo* t = g.FindTensor(name);
  if (t == nullptr) return required ? Errorf("{}: tensor '{}' is missing", g.name(), name) : OkStatus();
  const int64_t cols = static_cast<int64_t>(t->dims[0]);
  const int64_t rows = t->n_dims > 1 ? static_cast<int64_t>(t->dims[1]) : 1;
  if (cols != want_cols || rows != want_rows || t->n_dims > 2) {
    return Errorf("{}: tensor '{}' has shape {}, expected [{}, {}]", g.name(), name, t->ShapeString(), want_cols, want_rows);
  }
  if (ToFloatFor(t->type) == nullptr) {
    return Errorf("{}: tensor '{}' is {}, which lowbit cannot compute with yet", g.name(), name, TypeInfo(t->type).name);
  }
  *out = {t->type, t->data, rows, cols};
  return OkStatus();
}

// Norm weights are read in place when F32 (as every converter writes them); other types are
// dequantized into `scratch` (n floats).
void RmsNorm(const float* x, const WeightView& w, int64_t n, float eps, float* out, float* scratch) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float scale = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(n)) + eps);
  const float* wrow = reinterpret_cast<const float*>(w.data);
  if (w.type != GgmlType::kF32) {
    DequantizeRowOf(w.type, w.data, n, 0, scratch);
    wrow = scratch;
  }
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale * wrow[i];
}

}  // namespace

Expected<LlamaModel> LlamaModel::Load(const GgufFile& g) {
  LlamaModel m;
  LOWBIT_ASSIGN_OR_RETURN(std::string arch, g.GetString("general.architecture"));
  auto u = [&](const std::string& key) -> Expected<int64_t> {
    LOWBIT_ASSIGN_OR_RETURN(uint64_t v, g.GetUInt(arch + "." + key));
    if (v == 0 || v > (1u << 24)) return Errorf("{}: {}.{} = {} is out of range", g.name(), arch, key, v);
    return static_cast<int64_t>(v);
  };
  LlamaConfig& c = m.cfg_;
  LOWBIT_ASSIGN_OR_RETURN(c.n_embd, u("embedding_length"));
  LOWBIT_ASSIGN_OR_RETURN(c.n_layer, u("block_count"));
  LOWBIT_ASSIGN_OR_RETURN(c.n_head, u("attention.head_count"));
  LOWBIT_ASSIGN_OR_RETURN(c.n_ff, u("feed_forward_length"));
  LOWBIT_ASSIGN_OR_RETURN(c.n_ctx_train, u("context_length"));
  c.n_head_kv = g.Find(arch + ".attention.head_count_kv") ? *u("attention.head_count_kv") : c.n_head;
  if (c.n_embd % c.n_head != 0 || c.n_head % c.n_head_kv != 0) {
    return Errorf("{}: {} heads / {} KV heads do not divide embedding length {}", g.name(), c.n_head, c.n_head_kv, c.n_embd);
  }
  c.head_dim = c.n_embd / c.n_head;
  c.rope_dim = g.Find(arch + ".rope.dimension_count") ? *u("rope.dimension_count") : c.head_dim;
  if (c.rope_dim > c.head_dim || c.rope_dim % 2 != 0) return Errorf("{}: rope dimension {} is invalid", g.name(), c.rope_dim);
  if (const GgufValue* v = g.Find(arch + ".rope.freq_base"); v && v->AsFloat()) c.rope_freq_base = static_cast<float>(*v->AsFloat());
  if (const GgufValue* v = g.Find(arch + ".attention.layer_norm_rms_epsilon"); v && v->AsFloat()) c.rms_eps = static_cast<float>(*v->AsFloat());
  const GgufTensorInfo* emb = g.FindTensor("token_embd.weight");
  if (emb == nullptr || emb->n_dims != 2) return Errorf("{}: tensor 'token_embd.weight' is missing", g.name());
  c.n_vocab = static_cast<int64_t>(emb->dims[1]);
  const int64_t kv = c.n_head_kv * c.head_dim;
  LOWBIT_RETURN_IF_ERROR(View(g, "token_embd.weight", c.n_vocab, c.n_embd, &m.token_embd));
  LOWBIT_RETURN_IF_ERROR(View(g, "output_norm.weight", 1, c.n_embd, &m.output_norm));
  m.output = m.token_embd;  // tied when there is no separate classifier
  LOWBIT_RETURN_IF_ERROR(View(g, "output.weight", c.n_vocab, c.n_embd, &m.output, /*required=*/false));
  m.layers.resize(c.n_layer);
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    Layer& L = m.layers[l];
    LOWBIT_RETURN_IF_ERROR(View(g, p + "attn_norm.weight", 1, c.n_embd, &L.attn_norm));
    LOWBIT_RETURN_IF_ERROR(View(g, p + "attn_q.weight", c.n_embd, c.n_embd, &L.wq));
    LOWBIT_RETURN_IF_ERROR(View(g, p + "attn_k.weight", kv, c.n_embd, &L.wk));
    LOWBIT_RETURN_IF_ERROR(View(g, p + "attn_v.weight", kv, c.n_embd, &L.wv));
    LOWBIT_RETURN_IF_ERROR(View(g, p + "attn_output.weight", c.n_embd, c.n_embd, &L.wo));
    LOWBIT_RETURN_IF_ERROR(View(g, p + "ffn_norm.weight", 1, c.n_embd, &L.ffn_norm));
    LOWBIT_RETURN_IF_ERROR(View(g, p + "ffn_gate.weight", c.n_ff, c.n_embd, &L.gate));
    LOWBIT_RETURN_IF_ERROR(View(g, p + "ffn_up.weight", c.n_ff, c.n_embd, &L.up));
    LOWBIT_RETURN_IF_ERROR(View(g, p + "ffn_down.weight", c.n_embd, c.n_ff, &L.down));
  }
  return m;
}

LlamaSession::LlamaSession(const LlamaModel& model, int64_t n_ctx, int threads)
    : m_(model), c_(model.config()), n_ctx_(n_ctx), pool_(std::make_unique<ThreadPool>(threads)) {
  const int64_t kv = c_.n_head_kv * c_.head_dim;
  kv_.Resize(static_cast<size_t>(c_.n_layer * 2 * n_ctx * kv) * sizeof(float));
  x_.resize(c_.n_embd);
  xb_.resize(c_.n_embd);
  norm_w_.resize(c_.n_embd);
  q_.resize(c_.n_embd);
  k_.resize(kv);
  v_.resize(kv);
  att_.resize(n_ctx);
  hb_.resize(c_.n_ff);
  hb2_.resize(c_.n_ff);
  logits_.resize(c_.n_vocab);
  for (int64_t l = 0; l < c_.n_layer; ++l) {
    for (const char* w : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}) {
      names_.push_back("blk." + std::to_string(l) + "." + w + ".weight");
    }
  }
  // RoPE table: theta_i = pos * base^(-2i/rope_dim), as llama.cpp's "normal" mode.
  const int64_t half = c_.rope_dim / 2;
  rope_cos_.resize(n_ctx * half);
  rope_sin_.resize(n_ctx * half);
  for (int64_t p = 0; p < n_ctx; ++p) {
    for (int64_t i = 0; i < half; ++i) {
      const double theta = static_cast<double>(p) * std::pow(static_cast<double>(c_.rope_freq_base),
                                                              -2.0 * static_cast<double>(i) / static_cast<double>(c_.rope_dim));
      rope_cos_[p * half + i] = static_cast<float>(std::cos(theta));
      rope_sin_[p * half + i] = static_cast<float>(std::sin(theta));
    }
  }
}

void LlamaSession::Attention(int64_t l, int64_t pos) {
  const int64_t hd = c_.head_dim, kv = c_.n_head_kv * hd, group = c_.n_head / c_.n_head_kv;
  float* kcache = kv_.As<float>().data() + (l * 2 + 0) * n_ctx_ * kv;
  float* vcache = kv_.As<float>().data() + (l * 2 + 1) * n_ctx_ * kv;
  std::memcpy(kcache + pos * kv, k_.data(), kv * sizeof(float));
  std::memcpy(vcache + pos * kv, v_.data(), kv * sizeof(float));
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  for (int64_t h = 0; h < c_.n_head; ++h) {
    const float* q = q_.data() + h * hd;
    const int64_t kh = h / group;
    float mx = -INFINITY;
    for (int64_t t = 0; t <= pos; ++t) {
      att_[t] = Dot(q, kcache + t * kv + kh * hd, hd) * scale;
      mx = std::max(mx, att_[t]);
    }
    float sum = 0;
    for (int64_t t = 0; t <= pos; ++t) {
      att_[t] = std::exp(att_[t] - mx);
      sum += att_[t];
    }
    float* out = xb_.data() + h * hd;
    std::fill(out, out + hd, 0.0f);
    for (int64_t t = 0; t <= pos; ++t) {
      const float a = att_[t] / sum;
      const float* v = vcache + t * kv + kh * hd;
      for (int64_t i = 0; i < hd; ++i) out[i] += a * v[i];
    }
  }
}

const float* LlamaSession::Forward(int32_t token, int64_t pos) {
  LOWBIT_CHECK_MSG(token >= 0 && token < c_.n_vocab, "token {} out of range", token);
  LOWBIT_CHECK_MSG(pos >= 0 && pos < n_ctx_, "position {} outside the context of {}", pos, n_ctx_);
  const int64_t E = c_.n_embd, hd = c_.head_dim, half = c_.rope_dim / 2;
  ThreadPool* pool = pool_.get();
  DequantizeRowOf(m_.token_embd.type, m_.token_embd.data, E, token, x_.data());
  auto rope = [&](float* vec, int64_t heads) {
    for (int64_t h = 0; h < heads; ++h) {
      float* v = vec + h * hd;
      for (int64_t i = 0; i < half; ++i) {
        const float c = rope_cos_[pos * half + i], s = rope_sin_[pos * half + i];
        const float a = v[2 * i], b = v[2 * i + 1];
        v[2 * i] = a * c - b * s;
        v[2 * i + 1] = a * s + b * c;
      }
    }
  };
  auto observe = [&](int64_t l, int k, const float* v, int64_t n) {
    if (observer_) observer_(names_[l * 7 + k], v, n);
  };
  for (int64_t l = 0; l < c_.n_layer; ++l) {
    const LlamaModel::Layer& L = m_.layers[l];
    RmsNorm(x_.data(), L.attn_norm, E, c_.rms_eps, xb_.data(), norm_w_.data());
    for (int k = 0; k < 3; ++k) observe(l, k, xb_.data(), E);
    MatVecRef(L.wq.type, L.wq.data, L.wq.rows, E, xb_.data(), q_.data(), pool);
    MatVecRef(L.wk.type, L.wk.data, L.wk.rows, E, xb_.data(), k_.data(), pool);
    MatVecRef(L.wv.type, L.wv.data, L.wv.rows, E, xb_.data(), v_.data(), pool);
    rope(q_.data(), c_.n_head);
    rope(k_.data(), c_.n_head_kv);
    Attention(l, pos);
    observe(l, 3, xb_.data(), E);
    MatVecRef(L.wo.type, L.wo.data, E, E, xb_.data(), q_.data(), pool);
    for (int64_t i = 0; i < E; ++i) x_[i] += q_[i];
    RmsNorm(x_.data(), L.ffn_norm, E, c_.rms_eps, xb_.data(), norm_w_.data());
    observe(l, 4, xb_.data(), E);
    observe(l, 5, xb_.data(), E);
    MatVecRef(L.gate.type, L.gate.data, c_.n_ff, E, xb_.data(), hb_.data(), pool);
    MatVecRef(L.up.type, L.up.data, c_.n_ff, E, xb_.data(), hb2_.data(), pool);
    for (int64_t i = 0; i < c_.n_ff; ++i) hb_[i] = hb_[i] / (1.0f + std::exp(-hb_[i])) * hb2_[i];
    observe(l, 6, hb_.data(), c_.n_ff);
    MatVecRef(L.down.type, L.down.data, E, c_.n_ff, hb_.data(), q_.data(), pool);
    for (int64_t i = 0; i < E; ++i) x_[i] += q_[i];
  }
  RmsNorm(x_.data(), m_.output_norm, E, c_.rms_eps, xb_.data(), norm_w_.data());
  MatVecRef(m_.output.type, m_.output.data, c_.n_vocab, E, xb_.data(), logits_.data(), pool);
  return logits_.data();
}

}  // namespace lowbit

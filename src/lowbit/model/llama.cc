#include "lowbit/model/llama.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "lowbit/base/check.h"
#include "lowbit/kernels/dot.h"
#include "lowbit/model/llama_config.h"
#include "lowbit/model/session_memory.h"
#include "lowbit/numeric/convert.h"
#include "lowbit/numeric/dequant.h"

namespace lowbit {
namespace {

void RmsNorm(const float* x, const WeightView& w, int64_t n, float eps, float* out) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float scale = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(n)) + eps);
  const float* wrow = reinterpret_cast<const float*>(w.data);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale * wrow[i];
}

}  // namespace

const size_t LlamaSession::kLinearJobBytes = sizeof(LlamaSession::LinearJob);

LlamaSession::LlamaSession(const LlamaModel& model, int64_t n_ctx, int threads)
    : LlamaSession(model, SessionOptions{.n_ctx = n_ctx, .threads = threads, .max_batch = std::min<int64_t>(n_ctx, 512)}) {}

LlamaSession::LlamaSession(const LlamaModel& model, const SessionOptions& o)
    : m_(model),
      c_(model.config()),
      n_ctx_(o.n_ctx),
      max_batch_(std::max<int64_t>(1, std::min(o.max_batch, o.n_ctx * std::max(o.n_seq, 1)))),
      n_seq_(std::max(o.n_seq, 1)),
      batch_invariant_(o.batch_invariant),
      kv_f16_(o.kv_f16),
      q_dim_(model.local_heads() * model.config().head_dim),
      kv_dim_(model.local_kv_heads() * model.config().head_dim),
      own_pool_(o.pool == nullptr ? std::make_unique<ThreadPool>(o.threads) : nullptr),
      pool_(o.pool != nullptr ? o.pool : own_pool_.get()) {
  if (o.comm == nullptr) local_comm_ = std::make_unique<LocalComm>();
  comm_ = o.comm != nullptr ? o.comm : local_comm_.get();
  LOWBIT_CHECK_MSG(comm_->size() == model.ranks() && comm_->rank() == model.rank(),
                   "model loaded as rank {} of {}, communicator is rank {} of {}", model.rank(), model.ranks(), comm_->rank(), comm_->size());
  // Every size comes from PlanSession (model/session_memory.h), which the advisor predicts with.
  const SessionSizes sz = PlanSession(model, o);
  const int64_t B = sz.batch, E = sz.embd;
  LOWBIT_CHECK(B == max_batch_ && sz.q_dim == q_dim_ && sz.kv_dim == kv_dim_ && sz.threads == pool_->size());
  kv_.Resize(sz.kv_bytes);
  batch_.resize(B);
  want_.resize(B);
  x_.resize(B * E);
  xb_.resize(B * E);
  proj_.resize(B * E);
  q_.resize(B * sz.q_dim);
  att_out_.resize(B * sz.q_dim);
  k_.resize(B * sz.kv_dim);
  v_.resize(B * sz.kv_dim);
  hb_.resize(B * sz.ff);
  hb2_.resize(B * sz.ff);
  if (c_.moe()) {
    const int64_t rows = sz.expert_rows, ne = c_.n_expert;
    router_.resize(B * ne);
    route_.resize(rows);
    xe_.resize(rows * E);
    ye_.resize(rows * E);
    expert_rows_.resize(2 * ne + 1);
    expert_jobs_.reserve(2 * ne);
  }
  logits_.resize(sz.vocab);
  mm_scratch_.Get(sz.matmul_scratch_bytes);  // at its largest now: no step grows it
  if (model.ranks() > 1) {
    part_logits_.resize(B * model.plan().vocab.count);
    for (int r = 0; r < model.ranks(); ++r) vocab_counts_.push_back(VocabRows(c_.n_vocab, r, model.ranks()).count);
  }
  for (int64_t l = 0; l < c_.n_layer; ++l) {
    for (const char* w : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}) {
      names_.push_back("blk." + std::to_string(l) + "." + w + ".weight");
    }
  }
  // RoPE tables, as ggml's rope computes them: theta_i = pos * scale * base^(-2i/rope_dim) / factor_i,
  // cos and sin times the attn factor. Table 0 for global layers (the file's frequency factors:
  // rope_freqs, or phi3's long factors when the context exceeds the original one, else its short
  // ones), table 1 for sliding-window layers (their own base, no scaling).
  const int64_t half = sz.rope_half;
  rope_cos_.resize(sz.rope_tables * n_ctx_ * half);
  rope_sin_.resize(sz.rope_tables * n_ctx_ * half);
  const float* factors = m_.rope_freqs != nullptr ? m_.rope_freqs : n_ctx_ > c_.n_ctx_orig ? m_.rope_long : m_.rope_short;
  for (int64_t table = 0; table < sz.rope_tables; ++table) {
    const double base = table == 0 ? c_.rope_freq_base : c_.rope_freq_base_swa;
    const double scale = table == 0 ? c_.rope_freq_scale : 1.0;
    const double mscale = c_.rope_attn_factor;
    for (int64_t p = 0; p < n_ctx_; ++p) {
      for (int64_t i = 0; i < half; ++i) {
        double theta = static_cast<double>(p) * scale * std::pow(base, -2.0 * static_cast<double>(i) / static_cast<double>(c_.rope_dim));
        if (table == 0 && factors != nullptr) theta /= static_cast<double>(factors[i]);
        const int64_t at = (table * n_ctx_ + p) * half + i;
        rope_cos_[at] = static_cast<float>(std::cos(theta) * mscale);
        rope_sin_[at] = static_cast<float>(std::sin(theta) * mscale);
      }
    }
  }
  glu_ = c_.ffn_gelu ? ActiveDotKernels().geglu : ActiveDotKernels().swiglu;
}

void LlamaSession::Linears(std::span<const LinearJob> jobs, int64_t n) {
  MatMulArgs args[kMaxMatMulGroup];
  size_t i = 0;
  auto flush = [&] {
    if (i > 0) MatMulGroup(std::span<const MatMulArgs>(args, i), pool_, &mm_scratch_);
    i = 0;
  };
  for (const LinearJob& j : jobs) {
    const int64_t m = j.n > 0 ? j.n : n;
    if (j.w->rows == 0) continue;  // a rank with no heads or no FFN: nothing to compute
    if (j.w->cols == 0) {          // nor columns of a row-parallel weight: its part of the sum is zero
      std::fill(j.y, j.y + m * j.w->rows, 0.0f);
      continue;
    }
    if (i == kMaxMatMulGroup) flush();
    args[i++] = MatMulArgs{.type = j.w->type, .w = j.w->data, .rows = j.w->rows, .cols = j.w->cols, .row_stride = j.w->row_stride,
                           .x = j.x, .x_map = j.w->x_map, .x_stride = j.w->x_stride, .batch = m, .y = j.y,
                           .batch_invariant = batch_invariant_, .outlier_threshold = j.w->outlier_threshold};
  }
  flush();
  for (const LinearJob& j : jobs) {
    const int64_t m = j.n > 0 ? j.n : n;
    for (const LowRankUpdate& u : j.w->updates) LowRank(*j.w, u, j.x, m, j.y);
    if (j.bias == nullptr) continue;
    for (int64_t b = 0; b < m; ++b) {
      for (int64_t r = 0; r < j.w->rows; ++r) j.y[b * j.w->rows + r] += j.bias[r];
    }
  }
}

size_t LlamaSession::KvOffset(int64_t l, int kv, int32_t seq) const {
  return static_cast<size_t>(((l * 2 + kv) * n_seq_ + seq) * n_ctx_ * kv_dim_) * (kv_f16_ ? 2 : 4);
}

void LlamaSession::LowRank(const WeightView& w, const LowRankUpdate& u, const float* x, int64_t n, float* y) {
  if (lora_t_.size() < static_cast<size_t>(n * u.rank)) lora_t_.resize(static_cast<size_t>(n * u.rank));
  if (lora_z_.size() < static_cast<size_t>(n * w.rows)) lora_z_.resize(static_cast<size_t>(n * w.rows));
  const auto a_bytes = static_cast<uint64_t>(w.cols) * 4, b_bytes = static_cast<uint64_t>(u.rank) * 4;
  MatMul(MatMulArgs{.type = GgmlType::kF32, .w = reinterpret_cast<const uint8_t*>(u.a), .rows = u.rank, .cols = w.cols,
                    .row_stride = a_bytes, .x = x, .batch = n, .y = lora_t_.data()}, pool_, &mm_scratch_);
  MatMul(MatMulArgs{.type = GgmlType::kF32, .w = reinterpret_cast<const uint8_t*>(u.b), .rows = w.rows, .cols = u.rank,
                    .row_stride = b_bytes, .x = lora_t_.data(), .batch = n, .y = lora_z_.data()}, pool_, &mm_scratch_);
  for (int64_t i = 0; i < n * w.rows; ++i) y[i] += lora_z_[i] * u.scale;
}

void LlamaSession::StoreKv(int64_t l, int64_t n) {
  const size_t el = kv_f16_ ? 2 : 4;
  for (int64_t b = 0; b < n; ++b) {
    uint8_t* kc = kv_.data() + KvOffset(l, 0, batch_[b].seq);
    uint8_t* vc = kv_.data() + KvOffset(l, 1, batch_[b].seq);
    const size_t off = static_cast<size_t>(batch_[b].pos * kv_dim_) * el;
    if (kv_f16_) {
      ConvertF32ToF16(k_.data() + b * kv_dim_, reinterpret_cast<uint16_t*>(kc + off), static_cast<size_t>(kv_dim_));
      ConvertF32ToF16(v_.data() + b * kv_dim_, reinterpret_cast<uint16_t*>(vc + off), static_cast<size_t>(kv_dim_));
    } else {
      std::memcpy(kc + off, k_.data() + b * kv_dim_, static_cast<size_t>(kv_dim_) * el);
      std::memcpy(vc + off, v_.data() + b * kv_dim_, static_cast<size_t>(kv_dim_) * el);
    }
  }
}

void LlamaSession::Attention(int64_t l, int64_t n) {
  const int64_t hd = c_.head_dim, heads = m_.local_heads(), group = c_.n_head / c_.n_head_kv;
  const size_t el = kv_f16_ ? 2 : 4;
  const float scale = c_.attn_scale, cap = c_.attn_softcap;
  const int64_t n_ctx = n_ctx_, q_dim = q_dim_;
  const uint64_t stride = static_cast<uint64_t>(kv_dim_) * el;
  const AttendFn attend = ActiveDotKernels().ForAttend(kv_f16_);
  const AttendCappedFn attend_capped = ActiveDotKernels().attend_capped[kv_f16_ ? 1 : 0];
  // A sliding-window layer's token at pos reads positions (pos - n_swa, pos] (llama.cpp's standard window).
  const int64_t window = c_.swa_layers[l] != 0 ? c_.n_swa : 0;
  // This rank's query heads [h0, h0 + heads) and the KV heads [kv0, kv0 + kv_heads) they read (whole
  // groups, or parts of groups when KV heads are replicated over ranks).
  const int64_t kv_heads = m_.local_kv_heads(), h0 = m_.plan().heads.begin, kv0 = m_.plan().kv_heads.begin;
  auto run = [&](size_t begin, size_t end) {
    thread_local std::vector<float> att;  // grows once per thread
    if (att.size() < static_cast<size_t>(group * n_ctx)) att.resize(static_cast<size_t>(group * n_ctx));
    for (size_t item = begin; item < end; ++item) {
      // Token b, KV head hk, and this rank's query heads [q0, q1) that read it: positions [0, pos] of its sequence.
      const int64_t b = static_cast<int64_t>(item) / kv_heads, hk = static_cast<int64_t>(item) % kv_heads;
      const int64_t q0 = std::max(h0, (kv0 + hk) * group) - h0, q1 = std::min(h0 + heads, (kv0 + hk + 1) * group) - h0;
      const int64_t first = window > 0 ? std::max<int64_t>(0, batch_[b].pos + 1 - window) : 0;
      const uint64_t head_off = static_cast<uint64_t>(hk * hd) * el + static_cast<uint64_t>(first) * stride;
      const uint8_t* kc = kv_.data() + KvOffset(l, 0, batch_[b].seq) + head_off;
      const uint8_t* vc = kv_.data() + KvOffset(l, 1, batch_[b].seq) + head_off;
      const float* qh = q_.data() + b * q_dim + q0 * hd;
      float* out = att_out_.data() + b * q_dim + q0 * hd;
      if (cap > 0) attend_capped(qh, q1 - q0, kc, vc, stride, batch_[b].pos + 1 - first, hd, scale, cap, att.data(), out);
      else attend(qh, q1 - q0, kc, vc, stride, batch_[b].pos + 1 - first, hd, scale, att.data(), out);
    }
  };
  const size_t items = static_cast<size_t>(n * kv_heads);
  int64_t positions = 0;  // summed over the tokens
  for (int64_t b = 0; b < n; ++b) positions += batch_[b].pos + 1;
  if (pool_->size() > 1 && heads * positions * hd >= (int64_t{1} << 16)) pool_->ParallelFor(items, run, 1);
  else run(0, items);
}

void LlamaSession::SwiGlu(int64_t count) {
  const SwiGluFn swiglu = glu_;
  auto run = [&](size_t begin, size_t end) {
    swiglu(hb_.data() + begin, hb2_.data() + begin, hb_.data() + begin, static_cast<int64_t>(end - begin));
  };
  // A decode step's few thousand values are not worth waking the pool for; a prompt's are.
  constexpr size_t kGrain = 16384;
  if (pool_->size() > 1 && count >= int64_t{2} * static_cast<int64_t>(kGrain)) pool_->ParallelFor(static_cast<size_t>(count), run, kGrain);
  else run(0, static_cast<size_t>(count));
}

void LlamaSession::Rope(float* vec, int64_t width, int64_t heads, int64_t n, int table) {
  const int64_t hd = c_.head_dim, half = c_.rope_dim / 2;
  const int64_t stride = c_.rope_neox ? half : 1, step = c_.rope_neox ? 1 : 2;
  for (int64_t b = 0; b < n; ++b) {
    const float* cs = rope_cos_.data() + (table * n_ctx_ + batch_[b].pos) * half;
    const float* sn = rope_sin_.data() + (table * n_ctx_ + batch_[b].pos) * half;
    for (int64_t h = 0; h < heads; ++h) {
      float* v = vec + b * width + h * hd;
      for (int64_t i = 0; i < half; ++i) {
        float* p0 = v + i * step;
        float* p1 = p0 + stride;
        const float a = *p0, c = *p1;
        *p0 = a * cs[i] - c * sn[i];
        *p1 = a * sn[i] + c * cs[i];
      }
    }
  }
}

void LlamaSession::Observe(int64_t l, int k, const float* v, int64_t width, int64_t n) {
  if (!observer_) return;
  for (int64_t b = 0; b < n; ++b) observer_(names_[l * 7 + k], v + b * width, width);
}

void LlamaSession::HeadNorm(float* vec, int64_t width, int64_t heads, int64_t n, const WeightView& w) {
  const int64_t hd = c_.head_dim;
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t h = 0; h < heads; ++h) {
      float* v = vec + b * width + h * hd;
      RmsNorm(v, w, hd, c_.rms_eps, v);
    }
  }
}

void LlamaSession::NormInPlace(float* v, int64_t n, const WeightView& w) {
  const int64_t E = c_.n_embd;
  for (int64_t b = 0; b < n; ++b) RmsNorm(v + b * E, w, E, c_.rms_eps, v + b * E);
}

void LlamaSession::NormAll(const WeightView& w, int64_t n) {
  const int64_t E = c_.n_embd;
  for (int64_t b = 0; b < n; ++b) RmsNorm(x_.data() + b * E, w, E, c_.rms_eps, xb_.data() + b * E);
}

void LlamaSession::AttentionPart(int64_t l, int64_t n) {
  const LlamaModel::Layer& L = m_.layers[l];
  const int64_t E = c_.n_embd;
  NormAll(L.attn_norm, n);
  for (int k = 0; k < 3; ++k) Observe(l, k, xb_.data(), E, n);
  Linears({{&L.wq, xb_.data(), q_.data(), L.bq}, {&L.wk, xb_.data(), k_.data(), L.bk}, {&L.wv, xb_.data(), v_.data(), L.bv}}, n);
  if (L.q_norm.data != nullptr) HeadNorm(q_.data(), q_dim_, m_.local_heads(), n, L.q_norm);
  if (L.k_norm.data != nullptr) HeadNorm(k_.data(), kv_dim_, m_.local_kv_heads(), n, L.k_norm);
  const int table = c_.swa_layers[l] != 0 ? 1 : 0;
  Rope(q_.data(), q_dim_, m_.local_heads(), n, table);
  Rope(k_.data(), kv_dim_, m_.local_kv_heads(), n, table);
  StoreKv(l, n);
  Attention(l, n);
  Observe(l, 3, att_out_.data(), q_dim_, n);
  Linear(L.wo, att_out_.data(), n, proj_.data());
  comm_->AllReduceSum(proj_.data(), n * E);
  if (L.attn_post_norm.data != nullptr) NormInPlace(proj_.data(), n, L.attn_post_norm);
}

void LlamaSession::FfnPart(int64_t l, int64_t n) {
  const LlamaModel::Layer& L = m_.layers[l];
  const int64_t E = c_.n_embd, ff = m_.local_ff();
  NormAll(L.ffn_norm, n);
  if (c_.moe()) {
    MoeFfn(l, n);
  } else {
    Observe(l, 4, xb_.data(), E, n);
    Observe(l, 5, xb_.data(), E, n);
    Linears({{&L.gate, xb_.data(), hb_.data(), nullptr}, {&L.up, xb_.data(), hb2_.data(), nullptr}}, n);
    SwiGlu(n * ff);
    Observe(l, 6, hb_.data(), ff, n);
    Linear(L.down, hb_.data(), n, proj_.data());
  }
  comm_->AllReduceSum(proj_.data(), n * E);
  if (L.ffn_post_norm.data != nullptr) NormInPlace(proj_.data(), n, L.ffn_post_norm);
}

void LlamaSession::AddProj(int64_t n) {
  for (int64_t i = 0; i < n * c_.n_embd; ++i) x_[i] += proj_[i];
}

void LlamaSession::Step(int64_t n, int64_t n_want, float* logits) {
  const int64_t E = c_.n_embd;
  for (int64_t b = 0; b < n; ++b) {
    const BatchToken& t = batch_[b];
    LOWBIT_CHECK_MSG(t.token >= 0 && t.token < c_.n_vocab, "token {} out of range", t.token);
    LOWBIT_CHECK_MSG(t.seq >= 0 && t.seq < n_seq_ && t.pos >= 0 && t.pos < n_ctx_, "sequence {} position {} outside {} x {}", t.seq,
                     t.pos, n_seq_, n_ctx_);
    DequantizeRowOf(m_.token_embd.type, m_.token_embd.data, E, t.token, x_.data() + b * E, m_.token_embd.row_stride);
    if (c_.embd_scale != 1.0f) {
      for (int64_t i = 0; i < E; ++i) x_[b * E + i] *= c_.embd_scale;
    }
  }
  for (int64_t l = 0; l < c_.n_layer; ++l) {
    AttentionPart(l, n);
    AddProj(n);
    FfnPart(l, n);
    AddProj(n);
  }
  if (n_want == 0) return;
  for (int64_t i = 0; i < n_want; ++i) RmsNorm(x_.data() + want_[i] * E, m_.output_norm, E, c_.rms_eps, xb_.data() + i * E);
  Classify(n_want, logits);
}

void LlamaSession::Classify(int64_t n, float* logits) {
  const int64_t V = c_.n_vocab;
  if (m_.ranks() == 1) {
    Linear(m_.output, xb_.data(), n, logits);
  } else {
    // This rank's vocabulary rows, then every rank's rows gathered token by token.
    const int64_t part = m_.output.rows;
    Linear(m_.output, xb_.data(), n, part_logits_.data());
    for (int64_t b = 0; b < n; ++b) comm_->AllGatherV(part_logits_.data() + b * part, vocab_counts_, logits + b * V);
  }
  if (const float cap = c_.final_softcap; cap > 0) {
    const float inv = 1.0f / cap;  // as llama.cpp: scale by 1/cap, tanh, scale by cap
    for (int64_t i = 0; i < n * V; ++i) logits[i] = cap * std::tanh(logits[i] * inv);
  }
}

void LlamaSession::OutputNorm(const float* x, int64_t n, float* out) const {
  const int64_t E = c_.n_embd;
  for (int64_t b = 0; b < n; ++b) RmsNorm(x + b * E, m_.output_norm, E, c_.rms_eps, out + b * E);
}

void LlamaSession::SublayerBlock(int64_t layer, bool attention, const float* x, int64_t n, float* out) {
  LOWBIT_CHECK_MSG(layer >= 0 && layer < c_.n_layer, "layer {} of {}", layer, c_.n_layer);
  LOWBIT_CHECK_MSG(n >= 1 && n <= max_batch_ && n <= n_ctx_, "{} tokens: the session takes at most {} per step", n, max_batch_);
  const size_t len = static_cast<size_t>(n * c_.n_embd);
  std::copy(x, x + len, x_.begin());
  for (int64_t b = 0; b < n; ++b) batch_[b] = BatchToken{.token = 0, .seq = 0, .pos = b};
  if (attention) AttentionPart(layer, n);
  else FfnPart(layer, n);
  std::copy(proj_.begin(), proj_.begin() + static_cast<std::ptrdiff_t>(len), out);
}

const float* LlamaSession::Forward(std::span<const int32_t> tokens, int64_t pos0, bool all_logits) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  LOWBIT_CHECK_MSG(n >= 1, "Forward needs at least one token");
  LOWBIT_CHECK_MSG(pos0 >= 0 && pos0 + n <= n_ctx_, "positions {}..{} outside the context of {}", pos0, pos0 + n - 1, n_ctx_);
  if (all_logits && logits_.size() < static_cast<size_t>(n * c_.n_vocab)) logits_.resize(static_cast<size_t>(n * c_.n_vocab));
  for (int64_t done = 0; done < n; done += max_batch_) {
    const int64_t m = std::min(max_batch_, n - done);
    for (int64_t b = 0; b < m; ++b) {
      batch_[b] = BatchToken{.token = tokens[done + b], .seq = 0, .pos = pos0 + done + b};
      want_[b] = b;
    }
    float* out = all_logits ? logits_.data() + done * c_.n_vocab : logits_.data();
    if (all_logits) {
      Step(m, m, out);
    } else {
      want_[0] = m - 1;  // the last token's logits
      Step(m, 1, out);
    }
  }
  return logits_.data();
}

const float* LlamaSession::ForwardBatch(std::span<const BatchToken> batch) {
  const int64_t n = static_cast<int64_t>(batch.size());
  LOWBIT_CHECK_MSG(n >= 1, "ForwardBatch needs at least one token");
  int64_t wanted = 0;
  for (const BatchToken& t : batch) wanted += t.logits ? 1 : 0;
  if (logits_.size() < static_cast<size_t>(std::max<int64_t>(wanted, 1) * c_.n_vocab)) {
    logits_.resize(static_cast<size_t>(wanted * c_.n_vocab));
  }
  int64_t out_rows = 0;
  for (int64_t done = 0; done < n; done += max_batch_) {
    const int64_t m = std::min(max_batch_, n - done);
    int64_t n_want = 0;
    for (int64_t b = 0; b < m; ++b) {
      batch_[b] = batch[done + b];
      if (batch_[b].logits) want_[n_want++] = b;
    }
    Step(m, n_want, logits_.data() + out_rows * c_.n_vocab);
    out_rows += n_want;
  }
  return logits_.data();
}

}  // namespace lowbit

#include "lowbit/model/llama.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "lowbit/base/check.h"
#include "lowbit/kernels/dot.h"
#include "lowbit/numeric/convert.h"
#include "lowbit/numeric/dequant.h"

namespace lowbit {
namespace {

// Architectures whose RoPE rotates the two halves of the rotated dimensions (llama.cpp's
// LLAMA_ROPE_TYPE_NEOX) among those whose tensors this decoder reads.
constexpr std::array<const char*, 6> kNeoxArchs = {"qwen2", "qwen2moe", "stablelm", "gptneox", "olmo2", "starcoder2"};

Status View(const GgufFile& g, const std::string& name, int64_t want_rows, int64_t want_cols, WeightView* out,
            bool required = true) {
  const GgufTensorInfo* t = g.FindTensor(name);
  if (t == nullptr) return required ? Errorf("{}: tensor '{}' is missing", g.name(), name) : OkStatus();
  const int64_t cols = static_cast<int64_t>(t->dims[0]);
  const int64_t rows = t->n_dims > 1 ? static_cast<int64_t>(t->dims[1]) : 1;
  // A weight stored with its columns regrouped or padded (a GPTQ / AWQ folder opened by
  // pipeline/model_source.h) comes with its input map: stored column -> input column, -1 padding.
  const GgufTensorInfo* map = g.FindTensor(name + ".x_map");
  if (map != nullptr) {
    if (map->type != GgmlType::kI32 || map->n_dims != 1 || map->dims[0] != t->dims[0]) {
      return Errorf("{}: input map '{}' must be I32 of {} elements, not {} {}", g.name(), map->name, cols, TypeInfo(map->type).name,
                    map->ShapeString());
    }
    const auto* m = reinterpret_cast<const int32_t*>(map->data);
    for (int64_t i = 0; i < cols; ++i) {
      if (m[i] < -1 || m[i] >= want_cols) return Errorf("{}: input map '{}' entry {} = {} is out of range", g.name(), map->name, i, m[i]);
    }
  }
  if ((map != nullptr ? want_cols : cols) != want_cols || rows != want_rows || t->n_dims > 2) {
    return Errorf("{}: tensor '{}' has shape {}, expected [{}, {}]", g.name(), name, t->ShapeString(), want_cols, want_rows);
  }
  if (ToFloatFor(t->type) == nullptr) {
    return Errorf("{}: tensor '{}' is {}, which lowbit cannot compute with yet", g.name(), name, TypeInfo(t->type).name);
  }
  *out = {t->type, t->data, rows, cols, *RowBytes(t->type, static_cast<uint64_t>(cols))};
  if (map != nullptr) {
    out->x_map = reinterpret_cast<const int32_t*>(map->data);
    out->x_stride = want_cols;
  }
  return OkStatus();
}

// Optional F32 bias of `n` elements; *out stays nullptr when absent.
Status Bias(const GgufFile& g, const std::string& name, int64_t n, int64_t begin, const float** out) {
  const GgufTensorInfo* t = g.FindTensor(name);
  if (t == nullptr) return OkStatus();
  if (t->type != GgmlType::kF32 || t->n_dims != 1 || static_cast<int64_t>(t->dims[0]) != n) {
    return Errorf("{}: bias '{}' must be F32 of {} elements, not {} {}", g.name(), name, n, TypeInfo(t->type).name, t->ShapeString());
  }
  *out = reinterpret_cast<const float*>(t->data) + begin;
  return OkStatus();
}

// Column-parallel shard: rows [r.begin, r.begin + r.count).
WeightView RowsOf(const WeightView& w, ShardRange r) {
  WeightView v = w;
  v.data += static_cast<uint64_t>(r.begin) * w.row_stride;
  v.rows = r.count;
  return v;
}

// Row-parallel shard: columns [r.begin, r.begin + r.count) of every row, on block boundaries.
Expected<WeightView> ColsOf(const GgufFile& g, const std::string& name, const WeightView& w, ShardRange r) {
  if (w.x_map != nullptr) {  // regrouped / padded columns: only the whole row
    if (r.begin == 0 && r.count == w.x_stride) return w;
    return Errorf("{}: tensor '{}' has regrouped or padded columns (GPTQ act-order or a partial group) and cannot be split "
                  "over ranks yet", g.name(), name);
  }
  const int64_t bs = TypeInfo(w.type).block_size;
  if (r.begin % bs != 0 || r.count % bs != 0) {
    return Errorf("{}: tensor '{}' ({}) cannot be split at column {}: not a multiple of its block size {}", g.name(), name,
                  TypeInfo(w.type).name, r.begin, bs);
  }
  WeightView v = w;
  v.data += *RowBytes(w.type, static_cast<uint64_t>(r.begin));
  v.cols = r.count;
  return v;
}

void RmsNorm(const float* x, const WeightView& w, int64_t n, float eps, float* out) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float scale = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(n)) + eps);
  const float* wrow = reinterpret_cast<const float*>(w.data);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale * wrow[i];
}

}  // namespace

Expected<LlamaModel> LlamaModel::Load(const GgufFile& g, int rank, int ranks) {
  LlamaModel m;
  m.rank_ = rank;
  m.ranks_ = ranks;
  LOWBIT_ASSIGN_OR_RETURN(std::string arch, g.GetString("general.architecture"));
  auto u = [&](const std::string& key) -> Expected<int64_t> {
    LOWBIT_ASSIGN_OR_RETURN(uint64_t v, g.GetUInt(arch + "." + key));
    if (v == 0 || v > (1u << 24)) return Errorf("{}: {}.{} = {} is out of range", g.name(), arch, key, v);
    return static_cast<int64_t>(v);
  };
  LlamaConfig& c = m.cfg_;
  c.arch = arch;
  c.rope_neox = std::find_if(kNeoxArchs.begin(), kNeoxArchs.end(), [&](const char* a) { return arch == a; }) != kNeoxArchs.end();
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

  // This rank's heads (whole KV groups) and FFN slice.
  const int64_t group = c.n_head / c.n_head_kv;
  auto in_model = [&](const Status& s) { return Errorf("{}: cannot split over {} ranks: {}", g.name(), ranks, s.message()); };
  auto kv_heads = SplitDim(c.n_head_kv, 1, rank, ranks);
  if (!kv_heads.ok()) return in_model(kv_heads.status());
  const ShardRange q_rows{kv_heads->begin * group * c.head_dim, kv_heads->count * group * c.head_dim};
  const ShardRange kv_rows{kv_heads->begin * c.head_dim, kv_heads->count * c.head_dim};
  m.n_head_kv_local_ = kv_heads->count;
  m.n_head_local_ = kv_heads->count * group;
  // The FFN width splits on the block size of the down projections (their columns are split).
  int64_t ff_unit = 1;
  for (int64_t l = 0; l < c.n_layer && ranks > 1; ++l) {
    if (const GgufTensorInfo* t = g.FindTensor("blk." + std::to_string(l) + ".ffn_down.weight")) {
      ff_unit = std::max<int64_t>(ff_unit, TypeInfo(t->type).block_size);
    }
  }
  auto ff = SplitDim(c.n_ff, ff_unit, rank, ranks);
  if (!ff.ok()) return in_model(ff.status());
  m.n_ff_local_ = ff->count;

  const int64_t kv = c.n_head_kv * c.head_dim;
  LOWBIT_RETURN_IF_ERROR(View(g, "token_embd.weight", c.n_vocab, c.n_embd, &m.token_embd));
  LOWBIT_RETURN_IF_ERROR(View(g, "output_norm.weight", 1, c.n_embd, &m.output_norm));
  m.output = m.token_embd;  // tied when there is no separate classifier
  LOWBIT_RETURN_IF_ERROR(View(g, "output.weight", c.n_vocab, c.n_embd, &m.output, /*required=*/false));
  auto norm_is_f32 = [&](const std::string& name, const WeightView& w) {
    return w.type == GgmlType::kF32 ? OkStatus() : Errorf("{}: norm weight '{}' is {}, expected F32", g.name(), name, TypeInfo(w.type).name);
  };
  LOWBIT_RETURN_IF_ERROR(norm_is_f32("output_norm.weight", m.output_norm));
  m.layers.resize(c.n_layer);
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    Layer& L = m.layers[l];
    WeightView wq, wk, wv, wo, gate, up, down;
    LOWBIT_RETURN_IF_ERROR(View(g, p + "attn_norm.weight", 1, c.n_embd, &L.attn_norm));
    LOWBIT_RETURN_IF_ERROR(norm_is_f32(p + "attn_norm.weight", L.attn_norm));
    LOWBIT_RETURN_IF_ERROR(View(g, p + "attn_q.weight", c.n_embd, c.n_embd, &wq));
    LOWBIT_RETURN_IF_ERROR(View(g, p + "attn_k.weight", kv, c.n_embd, &wk));
    LOWBIT_RETURN_IF_ERROR(View(g, p + "attn_v.weight", kv, c.n_embd, &wv));
    LOWBIT_RETURN_IF_ERROR(View(g, p + "attn_output.weight", c.n_embd, c.n_embd, &wo));
    LOWBIT_RETURN_IF_ERROR(View(g, p + "ffn_norm.weight", 1, c.n_embd, &L.ffn_norm));
    LOWBIT_RETURN_IF_ERROR(norm_is_f32(p + "ffn_norm.weight", L.ffn_norm));
    LOWBIT_RETURN_IF_ERROR(View(g, p + "ffn_gate.weight", c.n_ff, c.n_embd, &gate));
    LOWBIT_RETURN_IF_ERROR(View(g, p + "ffn_up.weight", c.n_ff, c.n_embd, &up));
    LOWBIT_RETURN_IF_ERROR(View(g, p + "ffn_down.weight", c.n_embd, c.n_ff, &down));
    LOWBIT_RETURN_IF_ERROR(Bias(g, p + "attn_q.bias", c.n_embd, q_rows.begin, &L.bq));
    LOWBIT_RETURN_IF_ERROR(Bias(g, p + "attn_k.bias", kv, kv_rows.begin, &L.bk));
    LOWBIT_RETURN_IF_ERROR(Bias(g, p + "attn_v.bias", kv, kv_rows.begin, &L.bv));
    L.wq = RowsOf(wq, q_rows);
    L.wk = RowsOf(wk, kv_rows);
    L.wv = RowsOf(wv, kv_rows);
    L.gate = RowsOf(gate, *ff);
    L.up = RowsOf(up, *ff);
    LOWBIT_ASSIGN_OR_RETURN(L.wo, ColsOf(g, p + "attn_output.weight", wo, q_rows));
    LOWBIT_ASSIGN_OR_RETURN(L.down, ColsOf(g, p + "ffn_down.weight", down, *ff));
  }
  return m;
}

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
  const int64_t B = max_batch_, E = c_.n_embd;
  kv_.Resize(static_cast<size_t>(c_.n_layer * 2 * n_seq_ * n_ctx_ * kv_dim_) * (kv_f16_ ? 2 : 4));
  batch_.resize(B);
  want_.resize(B);
  x_.resize(B * E);
  xb_.resize(B * E);
  proj_.resize(B * E);
  q_.resize(B * q_dim_);
  att_out_.resize(B * q_dim_);
  k_.resize(B * kv_dim_);
  v_.resize(B * kv_dim_);
  hb_.resize(B * model.local_ff());
  hb2_.resize(B * model.local_ff());
  logits_.resize(c_.n_vocab);
  for (int64_t l = 0; l < c_.n_layer; ++l) {
    for (const char* w : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}) {
      names_.push_back("blk." + std::to_string(l) + "." + w + ".weight");
    }
  }
  // RoPE table: theta_i = pos * base^(-2i/rope_dim), as llama.cpp computes it.
  const int64_t half = c_.rope_dim / 2;
  rope_cos_.resize(n_ctx_ * half);
  rope_sin_.resize(n_ctx_ * half);
  for (int64_t p = 0; p < n_ctx_; ++p) {
    for (int64_t i = 0; i < half; ++i) {
      const double theta = static_cast<double>(p) * std::pow(static_cast<double>(c_.rope_freq_base),
                                                              -2.0 * static_cast<double>(i) / static_cast<double>(c_.rope_dim));
      rope_cos_[p * half + i] = static_cast<float>(std::cos(theta));
      rope_sin_[p * half + i] = static_cast<float>(std::sin(theta));
    }
  }
}

void LlamaSession::Linears(std::initializer_list<LinearJob> jobs, int64_t n) {
  MatMulArgs args[kMaxMatMulGroup];
  LOWBIT_CHECK(jobs.size() <= kMaxMatMulGroup);
  size_t i = 0;
  for (const LinearJob& j : jobs) {
    args[i++] = MatMulArgs{.type = j.w->type, .w = j.w->data, .rows = j.w->rows, .cols = j.w->cols, .row_stride = j.w->row_stride,
                           .x = j.x, .x_map = j.w->x_map, .x_stride = j.w->x_stride, .batch = n, .y = j.y,
                           .batch_invariant = batch_invariant_};
  }
  MatMulGroup(std::span<const MatMulArgs>(args, i), pool_, &mm_scratch_);
  for (const LinearJob& j : jobs) {
    for (const LowRankUpdate& u : j.w->updates) LowRank(*j.w, u, j.x, n, j.y);
    if (j.bias == nullptr) continue;
    for (int64_t b = 0; b < n; ++b) {
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
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const int64_t n_ctx = n_ctx_, q_dim = q_dim_;
  const uint64_t stride = static_cast<uint64_t>(kv_dim_) * el;
  const AttendFn attend = ActiveDotKernels().ForAttend(kv_f16_);
  const int64_t kv_heads = heads / group;
  auto run = [&](size_t begin, size_t end) {
    thread_local std::vector<float> att;  // grows once per thread
    if (att.size() < static_cast<size_t>(group * n_ctx)) att.resize(static_cast<size_t>(group * n_ctx));
    for (size_t item = begin; item < end; ++item) {
      // Token b, KV head hk, and the `group` query heads that read it: positions [0, pos] of its sequence.
      const int64_t b = static_cast<int64_t>(item) / kv_heads, hk = static_cast<int64_t>(item) % kv_heads;
      const uint64_t head_off = static_cast<uint64_t>(hk * hd) * el;
      const uint8_t* kc = kv_.data() + KvOffset(l, 0, batch_[b].seq);
      const uint8_t* vc = kv_.data() + KvOffset(l, 1, batch_[b].seq);
      attend(q_.data() + b * q_dim + hk * group * hd, group, kc + head_off, vc + head_off, stride, batch_[b].pos + 1, hd, scale,
             att.data(), att_out_.data() + b * q_dim + hk * group * hd);
    }
  };
  const size_t items = static_cast<size_t>(n * kv_heads);
  int64_t positions = 0;  // summed over the tokens
  for (int64_t b = 0; b < n; ++b) positions += batch_[b].pos + 1;
  if (pool_->size() > 1 && heads * positions * hd >= (int64_t{1} << 16)) pool_->ParallelFor(items, run, 1);
  else run(0, items);
}

void LlamaSession::SwiGlu(int64_t count) {
  const SwiGluFn swiglu = ActiveDotKernels().swiglu;
  auto run = [&](size_t begin, size_t end) {
    swiglu(hb_.data() + begin, hb2_.data() + begin, hb_.data() + begin, static_cast<int64_t>(end - begin));
  };
  // A decode step's few thousand values are not worth waking the pool for; a prompt's are.
  constexpr size_t kGrain = 16384;
  if (pool_->size() > 1 && count >= int64_t{2} * static_cast<int64_t>(kGrain)) pool_->ParallelFor(static_cast<size_t>(count), run, kGrain);
  else run(0, static_cast<size_t>(count));
}

void LlamaSession::Rope(float* vec, int64_t width, int64_t heads, int64_t n) {
  const int64_t hd = c_.head_dim, half = c_.rope_dim / 2;
  const int64_t stride = c_.rope_neox ? half : 1, step = c_.rope_neox ? 1 : 2;
  for (int64_t b = 0; b < n; ++b) {
    const float* cs = rope_cos_.data() + batch_[b].pos * half;
    const float* sn = rope_sin_.data() + batch_[b].pos * half;
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
  Rope(q_.data(), q_dim_, m_.local_heads(), n);
  Rope(k_.data(), kv_dim_, m_.local_kv_heads(), n);
  StoreKv(l, n);
  Attention(l, n);
  Observe(l, 3, att_out_.data(), q_dim_, n);
  Linear(L.wo, att_out_.data(), n, proj_.data());
  comm_->AllReduceSum(proj_.data(), n * E);
}

void LlamaSession::FfnPart(int64_t l, int64_t n) {
  const LlamaModel::Layer& L = m_.layers[l];
  const int64_t E = c_.n_embd, ff = m_.local_ff();
  NormAll(L.ffn_norm, n);
  Observe(l, 4, xb_.data(), E, n);
  Observe(l, 5, xb_.data(), E, n);
  Linears({{&L.gate, xb_.data(), hb_.data(), nullptr}, {&L.up, xb_.data(), hb2_.data(), nullptr}}, n);
  SwiGlu(n * ff);
  Observe(l, 6, hb_.data(), ff, n);
  Linear(L.down, hb_.data(), n, proj_.data());
  comm_->AllReduceSum(proj_.data(), n * E);
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
    DequantizeRowOf(m_.token_embd.type, m_.token_embd.data, E, t.token, x_.data() + b * E);
  }
  for (int64_t l = 0; l < c_.n_layer; ++l) {
    AttentionPart(l, n);
    AddProj(n);
    FfnPart(l, n);
    AddProj(n);
  }
  if (n_want == 0) return;
  for (int64_t i = 0; i < n_want; ++i) RmsNorm(x_.data() + want_[i] * E, m_.output_norm, E, c_.rms_eps, xb_.data() + i * E);
  Linear(m_.output, xb_.data(), n_want, logits);
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

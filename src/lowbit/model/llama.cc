#include "lowbit/model/llama.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "lowbit/base/check.h"
#include "lowbit/kernels/dot.h"
#include "lowbit/model/llama_config.h"
#include "lowbit/model/session_memory.h"
#include "lowbit/numeric/bnb.h"
#include "lowbit/numeric/convert.h"
#include "lowbit/numeric/dequant.h"
#include "lowbit/numeric/interleave.h"
#include "lowbit/parallel/agree.h"

namespace lowbit {
namespace {

struct Held {
  TensorPiece piece;
  WeightView* view = nullptr;     // a weight: data and row_stride are set when placed
  const float** bias = nullptr;   // or a bias
};

// Lists the weights rank p.rank holds, in a fixed order (every rank computes any rank's list the
// same way: rank 0 streams them with --tp-send-weights). Sets the views' shapes in `m`.
class WeightLister {
 public:
  WeightLister(const GgufFile& g, const LlamaConfig& c, std::vector<Held>* out) : g_(g), c_(c), out_(out) {}

  // The whole tensor `name` as a [rows][cols] weight; `required` false: absent is fine (*found false).
  Status Whole(const std::string& name, int64_t rows, int64_t cols, WeightView* v, bool required = true, bool* found = nullptr) {
    return Part(name, rows, cols, {0, rows}, {0, cols}, v, required, found);
  }
  // Rows `rs` and columns `cs` of the [rows][cols] tensor `name`. Columns are cut on block bounds.
  Status Part(const std::string& name, int64_t rows, int64_t cols, ShardRange rs, ShardRange cs, WeightView* v,
              bool required = true, bool* found = nullptr) {
    const GgufTensorInfo* t = g_.FindTensor(name);
    if (found != nullptr) *found = t != nullptr;
    if (t == nullptr) {
      return required ? Errorf("{}: tensor '{}' of shape [{}, {}] is missing (architecture {})", g_.name(), name, cols, rows, c_.arch)
                      : OkStatus();
    }
    // A weight stored with its columns regrouped or padded (a GPTQ / AWQ folder opened by
    // pipeline/model_source.h) comes with its input map: stored column -> input column, -1 padding.
    // Its rows are whole: the stored columns, read against inputs of `cols`; a rank's input columns
    // are those of the stored row repacked (GroupedPick, model/shard.h).
    const int64_t in_cols = cols;
    const GgufTensorInfo* map = g_.FindTensor(name + ".x_map");
    if (map != nullptr) {
      LOWBIT_RETURN_IF_ERROR(CheckMap(*t, *map, in_cols));
      cols = static_cast<int64_t>(t->dims[0]);
      if (cs.begin != 0 || cs.count != in_cols) return Picked(*t, reinterpret_cast<const int32_t*>(map->data), rows, cols, rs, cs, v);
      cs = {0, cols};
    }
    LOWBIT_RETURN_IF_ERROR(CheckShape(*t, rows, cols));
    LOWBIT_RETURN_IF_ERROR(Piece(*t, 0, rs, cs, cols, v));
    if (map != nullptr) {
      v->x_map = reinterpret_cast<const int32_t*>(map->data);
      v->x_stride = in_cols;
    }
    return OkStatus();
  }
  // Rows `rs` of the mapped grouped weight t ([rows][cols] stored), repacked to input columns `cs`.
  Status Picked(const GgufTensorInfo& t, const int32_t* map, int64_t rows, int64_t cols, ShardRange rs, ShardRange cs, WeightView* v) {
    LOWBIT_RETURN_IF_ERROR(CheckShape(t, rows, cols));
    auto pick = PickGroupedColumns(t, map, cs);
    if (!pick.ok()) return Errorf("{}: {}", g_.name(), pick.status().message());
    auto p = std::make_shared<const GroupedPick>(std::move(*pick));
    const uint64_t bytes = p->to.row_bytes();
    *v = {p->to.type, nullptr, rs.count, p->to.stored_cols, bytes};
    v->x_map = p->x_map.data();
    v->x_stride = cs.count;
    const uint64_t row_bytes = *RowBytes(t.type, static_cast<uint64_t>(cols));
    out_->push_back({{&t, static_cast<uint64_t>(rs.begin), static_cast<uint64_t>(rs.count), 0, bytes, row_bytes, 0, std::move(p)}, v, nullptr});
    return OkStatus();
  }
  // Expert e's rows `rs` and columns `cs` of the 3-D tensor `name`, n_expert matrices of [rows][cols]
  // (GGUF dims [cols, rows, n_expert]) read as one of n_expert * rows rows.
  Status Expert(const std::string& name, int64_t e, int64_t n_expert, int64_t rows, int64_t cols, ShardRange rs, ShardRange cs,
                WeightView* v) {
    const GgufTensorInfo* t = g_.FindTensor(name);
    if (t == nullptr) {
      return Errorf("{}: tensor '{}' of shape [{}, {}, {}] is missing (architecture {})", g_.name(), name, cols, rows, n_expert, c_.arch);
    }
    if (t->n_dims != 3 || static_cast<int64_t>(t->dims[0]) != cols || static_cast<int64_t>(t->dims[1]) != rows ||
        static_cast<int64_t>(t->dims[2]) != n_expert) {
      return Errorf("{}: tensor '{}' has shape {}, expected [{}, {}, {}]", g_.name(), name, t->ShapeString(), cols, rows, n_expert);
    }
    return Piece(*t, e * rows, rs, cs, cols, v);
  }
  // An optional F32 bias of `n` elements: its elements `r`.
  Status Bias(const std::string& name, int64_t n, ShardRange r, const float** out) {
    *out = nullptr;
    const GgufTensorInfo* t = g_.FindTensor(name);
    if (t == nullptr) return OkStatus();
    if (t->type != GgmlType::kF32 || t->n_dims != 1 || static_cast<int64_t>(t->dims[0]) != n) {
      return Errorf("{}: bias '{}' must be F32 of {} elements, not {} {}", g_.name(), name, n, TypeInfo(t->type).name, t->ShapeString());
    }
    const auto b = static_cast<uint64_t>(r.begin) * 4, len = static_cast<uint64_t>(r.count) * 4;
    out_->push_back({{t, 0, 1, b, len, static_cast<uint64_t>(n) * 4}, nullptr, out});
    return OkStatus();
  }
  // A norm weight of n elements (n_embd by default); `required` false: absent leaves v->data null.
  Status Norm(const std::string& name, WeightView* v, int64_t n = 0, bool required = true) {
    bool found = true;
    LOWBIT_RETURN_IF_ERROR(Whole(name, 1, n > 0 ? n : c_.n_embd, v, required, &found));
    if (found && v->type != GgmlType::kF32) {
      return Errorf("{}: norm weight '{}' is {}, expected F32", g_.name(), name, TypeInfo(v->type).name);
    }
    return OkStatus();
  }
  bool Has(const std::string& name) const { return g_.FindTensor(name) != nullptr; }

 private:
  // Rows row0 + rs and columns cs of tensor t (rows of `cols` elements) as the view *v and its piece.
  Status Piece(const GgufTensorInfo& t, int64_t row0, ShardRange rs, ShardRange cs, int64_t cols, WeightView* v) {
    if (ToFloatFor(t.type) == nullptr) {
      return Errorf("{}: tensor '{}' is {}, which lowbit cannot compute with yet", g_.name(), t.name, TypeInfo(t.type).name);
    }
    const int64_t bs = TypeInfo(t.type).block_size;
    if (cs.begin % bs != 0 || cs.count % bs != 0) {
      return Errorf("{}: tensor '{}' ({}) cannot be split at column {}: not a multiple of its block size {}", g_.name(), t.name,
                    TypeInfo(t.type).name, cs.begin + (cs.begin % bs == 0 ? cs.count : 0), bs);
    }
    const uint64_t row_bytes = *RowBytes(t.type, static_cast<uint64_t>(cols));
    const uint64_t byte0 = *RowBytes(t.type, static_cast<uint64_t>(cs.begin));
    const uint64_t bytes = *RowBytes(t.type, static_cast<uint64_t>(cs.count));
    *v = {t.type, nullptr, rs.count, cs.count, bytes};
    if (IsInt8RowType(t.type)) v->outlier_threshold = Int8Threshold();
    out_->push_back({{&t, static_cast<uint64_t>(row0 + rs.begin), static_cast<uint64_t>(rs.count), byte0, bytes, row_bytes}, v, nullptr});
    return OkStatus();
  }
  float Int8Threshold() const {
    Expected<double> t = g_.GetFloat(kInt8ThresholdKey);
    return t.ok() ? static_cast<float>(*t) : 0.0f;
  }
  // The input map of `t`: I32, one entry per stored column, each an input column below `in_cols` or -1.
  Status CheckMap(const GgufTensorInfo& t, const GgufTensorInfo& map, int64_t in_cols) const {
    const auto stored = static_cast<int64_t>(t.dims[0]);
    if (map.type != GgmlType::kI32 || map.n_dims != 1 || map.dims[0] != t.dims[0] || map.data == nullptr) {
      return Errorf("{}: input map '{}' must be I32 of {} elements, not {} {}", g_.name(), map.name, stored, TypeInfo(map.type).name,
                    map.ShapeString());
    }
    const auto* m = reinterpret_cast<const int32_t*>(map.data);
    for (int64_t i = 0; i < stored; ++i) {
      if (m[i] < -1 || m[i] >= in_cols) return Errorf("{}: input map '{}' entry {} = {} is out of range", g_.name(), map.name, i, m[i]);
    }
    return OkStatus();
  }
  Status CheckShape(const GgufTensorInfo& t, int64_t rows, int64_t cols) const {
    const int64_t c = static_cast<int64_t>(t.dims[0]);
    const int64_t r = t.n_dims > 1 ? static_cast<int64_t>(t.dims[1]) : 1;
    if (c != cols || r != rows || t.n_dims > 2) {
      return Errorf("{}: tensor '{}' has shape {}, expected [{}, {}]", g_.name(), t.name, t.ShapeString(), cols, rows);
    }
    return OkStatus();
  }
  const GgufFile& g_;
  const LlamaConfig& c_;
  std::vector<Held>* out_;
};

// Q, K and V of layer prefix `b`: attn_q/k/v, or row ranges of a fused attn_qkv [q | k | v] (the
// rank's query rows, then its K and V rows; biases likewise from attn_qkv.bias or separate ones).
Status ListAttention(WeightLister& w, const LlamaConfig& c, const ShardPlan& p, const std::string& b, LlamaModel::Layer& L) {
  const int64_t hd = c.head_dim, q = c.n_head * hd, kv = c.n_head_kv * hd, E = c.n_embd;
  const ShardRange q_rows{p.heads.begin * hd, p.heads.count * hd}, kv_rows{p.kv_heads.begin * hd, p.kv_heads.count * hd};
  if (w.Has(b + "attn_qkv.weight")) {
    const std::string n = b + "attn_qkv.weight", nb = b + "attn_qkv.bias";
    const int64_t all = q + 2 * kv;
    const ShardRange k_rows{q + kv_rows.begin, kv_rows.count}, v_rows{q + kv + kv_rows.begin, kv_rows.count};
    LOWBIT_RETURN_IF_ERROR(w.Part(n, all, E, q_rows, {0, E}, &L.wq));
    LOWBIT_RETURN_IF_ERROR(w.Part(n, all, E, k_rows, {0, E}, &L.wk));
    LOWBIT_RETURN_IF_ERROR(w.Part(n, all, E, v_rows, {0, E}, &L.wv));
    if (w.Has(nb)) {
      LOWBIT_RETURN_IF_ERROR(w.Bias(nb, all, q_rows, &L.bq));
      LOWBIT_RETURN_IF_ERROR(w.Bias(nb, all, k_rows, &L.bk));
      return w.Bias(nb, all, v_rows, &L.bv);
    }
  } else {
    LOWBIT_RETURN_IF_ERROR(w.Part(b + "attn_q.weight", q, E, q_rows, {0, E}, &L.wq));
    LOWBIT_RETURN_IF_ERROR(w.Part(b + "attn_k.weight", kv, E, kv_rows, {0, E}, &L.wk));
    LOWBIT_RETURN_IF_ERROR(w.Part(b + "attn_v.weight", kv, E, kv_rows, {0, E}, &L.wv));
  }
  LOWBIT_RETURN_IF_ERROR(w.Bias(b + "attn_q.bias", q, q_rows, &L.bq));
  LOWBIT_RETURN_IF_ERROR(w.Bias(b + "attn_k.bias", kv, kv_rows, &L.bk));
  return w.Bias(b + "attn_v.bias", kv, kv_rows, &L.bv);
}

// Gate and up of layer prefix `b`: ffn_gate and ffn_up, or one ffn_up of 2 n_ff rows holding the
// gate then the up rows (phi3), each cut to the rank's FFN columns.
Status ListFfn(WeightLister& w, const LlamaConfig& c, const ShardPlan& p, const std::string& b, LlamaModel::Layer& L) {
  const int64_t E = c.n_embd, ff = c.n_ff;
  if (!w.Has(b + "ffn_gate.weight") && w.Has(b + "ffn_up.weight")) {
    LOWBIT_RETURN_IF_ERROR(w.Part(b + "ffn_up.weight", 2 * ff, E, p.ff, {0, E}, &L.gate));
    return w.Part(b + "ffn_up.weight", 2 * ff, E, {ff + p.ff.begin, p.ff.count}, {0, E}, &L.up);
  }
  LOWBIT_RETURN_IF_ERROR(w.Part(b + "ffn_gate.weight", ff, E, p.ff, {0, E}, &L.gate));
  return w.Part(b + "ffn_up.weight", ff, E, p.ff, {0, E}, &L.up);
}

// The mixture-of-experts FFN of layer prefix `b`: the router ffn_gate_inp (whole), every expert's
// gate/up rows and down columns of the rank's part of the expert width (ffn_*_exps, 3-D), and the
// shared expert's (ffn_*_shexp, with its gate vector ffn_gate_inp_shexp) where the model has one.
Status ListExperts(WeightLister& w, const LlamaConfig& c, const ShardPlan& p, const std::string& b, LlamaModel::Layer& L) {
  const int64_t E = c.n_embd, ne = c.n_expert, ff = c.n_ff_exp;
  LOWBIT_RETURN_IF_ERROR(w.Whole(b + "ffn_gate_inp.weight", ne, E, &L.router));
  L.gate_exps.resize(ne);
  L.up_exps.resize(ne);
  L.down_exps.resize(ne);
  for (int64_t e = 0; e < ne; ++e) {
    LOWBIT_RETURN_IF_ERROR(w.Expert(b + "ffn_gate_exps.weight", e, ne, ff, E, p.ff, {0, E}, &L.gate_exps[e]));
    LOWBIT_RETURN_IF_ERROR(w.Expert(b + "ffn_up_exps.weight", e, ne, ff, E, p.ff, {0, E}, &L.up_exps[e]));
    LOWBIT_RETURN_IF_ERROR(w.Expert(b + "ffn_down_exps.weight", e, ne, E, ff, {0, E}, p.ff, &L.down_exps[e]));
  }
  if (c.n_ff_shexp == 0) return OkStatus();
  const int64_t fs = c.n_ff_shexp;
  LOWBIT_RETURN_IF_ERROR(w.Norm(b + "ffn_gate_inp_shexp.weight", &L.shexp_gate_inp));  // F32, like a norm weight
  LOWBIT_RETURN_IF_ERROR(w.Part(b + "ffn_gate_shexp.weight", fs, E, p.ff_shexp, {0, E}, &L.shexp_gate));
  LOWBIT_RETURN_IF_ERROR(w.Part(b + "ffn_up_shexp.weight", fs, E, p.ff_shexp, {0, E}, &L.shexp_up));
  return w.Part(b + "ffn_down_shexp.weight", E, fs, {0, E}, p.ff_shexp, &L.shexp_down);
}

// RoPE frequency factors: rope_freqs (Llama 3.x), rope_factors_long / _short (phi3), [rope_dim / 2] F32.
Status ListRopeFactors(WeightLister& w, const LlamaConfig& c, LlamaModel& m) {
  const int64_t n = c.rope_dim / 2;
  LOWBIT_RETURN_IF_ERROR(w.Bias("rope_freqs.weight", n, {0, n}, &m.rope_freqs));
  LOWBIT_RETURN_IF_ERROR(w.Bias("rope_factors_long.weight", n, {0, n}, &m.rope_long));
  return w.Bias("rope_factors_short.weight", n, {0, n}, &m.rope_short);
}

// Lists rank p.rank's weights into `held` and their shapes into `m`. *tied: the classifier is the
// embedding (no output.weight), so m.output is cut from m.token_embd once placed.
Status ListWeights(const GgufFile& g, const LlamaConfig& c, const ShardPlan& p, LlamaModel& m, std::vector<Held>* held, bool* tied) {
  WeightLister w(g, c, held);
  const int64_t hd = c.head_dim, q = c.n_head * hd;
  const ShardRange q_rows{p.heads.begin * hd, p.heads.count * hd};
  LOWBIT_RETURN_IF_ERROR(w.Whole("token_embd.weight", c.n_vocab, c.n_embd, &m.token_embd));
  LOWBIT_RETURN_IF_ERROR(w.Norm("output_norm.weight", &m.output_norm));
  bool has_output = false;
  LOWBIT_RETURN_IF_ERROR(w.Part("output.weight", c.n_vocab, c.n_embd, p.vocab, {0, c.n_embd}, &m.output, false, &has_output));
  *tied = !has_output;
  LOWBIT_RETURN_IF_ERROR(ListRopeFactors(w, c, m));
  // The norms an architecture requires (others are read when present).
  const bool qk_norm = c.arch == "qwen3" || c.arch == "qwen3moe" || c.arch == "gemma3", post_norms = c.arch == "gemma2" || c.arch == "gemma3";
  m.layers.resize(c.n_layer);
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    LlamaModel::Layer& L = m.layers[l];
    LOWBIT_RETURN_IF_ERROR(w.Norm(b + "attn_norm.weight", &L.attn_norm));
    LOWBIT_RETURN_IF_ERROR(ListAttention(w, c, p, b, L));
    LOWBIT_RETURN_IF_ERROR(w.Part(b + "attn_output.weight", c.n_embd, q, {0, c.n_embd}, q_rows, &L.wo));
    LOWBIT_RETURN_IF_ERROR(w.Norm(b + "attn_q_norm.weight", &L.q_norm, hd, qk_norm));
    LOWBIT_RETURN_IF_ERROR(w.Norm(b + "attn_k_norm.weight", &L.k_norm, hd, qk_norm));
    LOWBIT_RETURN_IF_ERROR(w.Norm(b + "post_attention_norm.weight", &L.attn_post_norm, 0, post_norms));
    LOWBIT_RETURN_IF_ERROR(w.Norm(b + "ffn_norm.weight", &L.ffn_norm));
    if (c.moe()) {
      LOWBIT_RETURN_IF_ERROR(ListExperts(w, c, p, b, L));
    } else {
      LOWBIT_RETURN_IF_ERROR(ListFfn(w, c, p, b, L));
      LOWBIT_RETURN_IF_ERROR(w.Part(b + "ffn_down.weight", c.n_embd, c.n_ff, {0, c.n_embd}, p.ff, &L.down));
    }
    LOWBIT_RETURN_IF_ERROR(w.Norm(b + "post_ffw_norm.weight", &L.ffn_post_norm, 0, post_norms));
  }
  return OkStatus();
}

void RmsNorm(const float* x, const WeightView& w, int64_t n, float eps, float* out) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float scale = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(n)) + eps);
  const float* wrow = reinterpret_cast<const float*>(w.data);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale * wrow[i];
}

ShardImage ImageOf(const std::vector<Held>& held) {
  ShardImage img;
  for (const Held& h : held) img.Add(h.piece);
  return img;
}

// Points each view at its bytes: `base` + the piece's image offset (packed rows), or, for views
// into the file (base null), the tensor's own bytes.
Status Place(const GgufFile& g, const std::vector<Held>& held, const ShardImage& img, const uint8_t* base) {
  for (size_t i = 0; i < held.size(); ++i) {
    const TensorPiece& p = img.pieces[i];
    const uint8_t* at = nullptr;
    if (base != nullptr) {
      at = base + p.image_offset;
    } else {
      if (p.tensor->data == nullptr) return Errorf("{}: tensor '{}' has no data in this process", g.name(), p.tensor->name);
      at = p.tensor->data + p.row0 * p.row_bytes + p.byte0;
    }
    if (held[i].view != nullptr) {
      held[i].view->data = at;
      held[i].view->row_stride = base != nullptr ? p.step() : p.row_bytes;
    } else {
      *held[i].bias = reinterpret_cast<const float*>(at);
    }
  }
  return OkStatus();
}

// Rows `r` of a whole weight (the tied classifier's vocabulary rows of the embedding).
WeightView RowsOf(const WeightView& w, ShardRange r) {
  WeightView v = w;
  v.data += static_cast<uint64_t>(r.begin) * w.row_stride;
  v.rows = r.count;
  return v;
}

// The model's own image (kCopy): each weight matrix whose type has an interleaved form the active
// kernel table runs (InterleavedFor: Q4_K on the AVX-512 table) is rearranged in place and takes
// that type (numeric/interleave.h), for the 8-row kernels; its rows must be whole groups of 8 and
// packed. The embedding keeps the file's layout (looked up by row, and the tied classifier's rows).
void InterleaveImage(LlamaModel& m, uint8_t* image, uint64_t image_bytes) {
  const DotKernels& k = ActiveDotKernels();
  auto interleave = [&](WeightView& v) {
    if (v.data == nullptr || v.data < image || v.data >= image + image_bytes || v.rows % kX8Rows != 0) return;
    const std::optional<GgmlType> x = InterleavedFor(k, v.type);
    if (!x || v.row_stride != RowBytes(v.type, static_cast<uint64_t>(v.cols))) return;
    InterleaveRows(v.type, image + (v.data - image), v.rows, v.cols);
    v.type = *x;
  };
  for (LlamaModel::Layer& L : m.layers) {
    for (WeightView* v : {&L.wq, &L.wk, &L.wv, &L.wo, &L.gate, &L.up, &L.down, &L.shexp_gate, &L.shexp_up, &L.shexp_down}) interleave(*v);
    for (auto* experts : {&L.gate_exps, &L.up_exps, &L.down_exps}) {
      for (WeightView& v : *experts) interleave(v);
    }
  }
  interleave(m.output);
}

// readable: the norm weights can be read (not a header-only plan, GgufFile::FromHeader).
uint64_t FingerprintOf(const LlamaConfig& c, const std::vector<Held>& held, bool readable) {
  Fingerprint f;
  f.Add(c.arch);
  for (int64_t v : {c.n_vocab, c.n_embd, c.n_layer, c.n_head, c.n_head_kv, c.n_ff, c.rope_dim, c.n_ctx_train}) f.Add(static_cast<uint64_t>(v));
  f.Add(&c.rope_freq_base, sizeof(float));
  f.Add(&c.rms_eps, sizeof(float));
  for (const Held& h : held) {
    const GgufTensorInfo& t = *h.piece.tensor;
    f.Add(t.name);
    f.Add(static_cast<uint64_t>(t.type));
    for (uint64_t d : t.dims) f.Add(d);
    // Norm weights are whole on every rank and differ between any two trained models.
    if (readable && h.view != nullptr && h.view->data != nullptr && t.name.find("norm") != std::string::npos) {
      f.Add(h.view->data, h.piece.size());
    }
  }
  return f.value();
}

}  // namespace

bool LlamaModel::PlainLlama() const {
  const LlamaConfig& c = cfg_;
  for (const Layer& L : layers) {
    if (L.q_norm.data || L.k_norm.data || L.attn_post_norm.data || L.ffn_post_norm.data) return false;
  }
  return !c.moe() && c.n_swa == 0 && c.rope_freq_scale == 1.0f && c.rope_attn_factor == 1.0f && c.attn_softcap == 0 && c.final_softcap == 0 &&
         c.embd_scale == 1.0f && !c.ffn_gelu && c.attn_scale == 1.0f / std::sqrt(static_cast<float>(c.head_dim)) &&
         c.head_dim * c.n_head == c.n_embd && !rope_freqs && !rope_long && !rope_short;
}

Expected<LlamaModel> LlamaModel::Load(const GgufFile& g, int rank, int ranks) {
  return Load(g, LoadOptions{.rank = rank, .ranks = ranks});
}

Expected<LlamaModel> LlamaModel::Load(const GgufFile& g, const LoadOptions& o) {
  LlamaModel m;
  std::vector<Held> held;
  bool tied = false, copy = o.weights == LoadOptions::Weights::kCopy || (o.weights == LoadOptions::Weights::kAuto && g.in_memory());
  // Everything up to the transfer can fail on one rank only; with --tp-send-weights the ranks agree
  // first, so that no rank waits for bytes that will not come.
  auto prepare = [&]() -> Status {
    LOWBIT_ASSIGN_OR_RETURN(m.cfg_, ReadLlamaConfig(g));
    LOWBIT_ASSIGN_OR_RETURN(m.plan_, PlanShard(g, m.cfg_, o.rank, o.ranks));
    LOWBIT_RETURN_IF_ERROR(ListWeights(g, m.cfg_, m.plan_, m, &held, &tied));
    // Repacked pieces exist only in the rank's own memory: such a rank copies its bytes.
    for (const Held& h : held) {
      if (h.piece.pick != nullptr) {
        copy = true;
        m.picks_.push_back(h.piece.pick);
      }
    }
    if (copy || o.stream != nullptr) {
      LOWBIT_ASSIGN_OR_RETURN(m.image_, PageBuffer::Allocate(ImageOf(held).bytes,
                                                             fmt::format("{}: rank {}'s weights", g.name(), o.rank)));
    }
    return OkStatus();
  };
  Status ready = prepare();
  if (o.stream != nullptr) LOWBIT_RETURN_IF_ERROR(AgreeOnStatus(o.stream, ready));
  LOWBIT_RETURN_IF_ERROR(ready);
  const ShardImage img = ImageOf(held);
  if (o.stream != nullptr && o.rank != 0) {
    LOWBIT_RETURN_IF_ERROR(ReceiveImage(o.stream, img, m.image_.data()));
  } else if (o.stream != nullptr) {
    // Rank 0 serves every other rank even when it fails (they would wait for it otherwise).
    std::vector<ShardImage> images(static_cast<size_t>(o.ranks));
    Expected<TensorDataReader> reader = TensorDataReader::For(g);
    Status s = reader.ok() ? FillImage(img, *reader, 0, img.bytes, m.image_.data()) : reader.status();
    for (int r = 1; r < o.ranks && s.ok(); ++r) {
      LlamaModel other;
      std::vector<Held> other_held;
      bool other_tied = false;
      auto p = PlanShard(g, m.cfg_, r, o.ranks);
      s = p.ok() ? ListWeights(g, m.cfg_, *p, other, &other_held, &other_tied) : p.status();
      images[r] = ImageOf(other_held);
    }
    LOWBIT_RETURN_IF_ERROR(SendImages(o.stream, images, s.ok() ? &*reader : nullptr, s));
  } else if (copy) {
    LOWBIT_ASSIGN_OR_RETURN(TensorDataReader reader, TensorDataReader::For(g));
    LOWBIT_RETURN_IF_ERROR(FillImage(img, reader, 0, img.bytes, m.image_.data()));
  }
  LOWBIT_RETURN_IF_ERROR(Place(g, held, img, m.image_.size() > 0 ? m.image_.data() : nullptr));
  if (m.image_.size() > 0) InterleaveImage(m, m.image_.data(), m.image_.size());
  m.image_.Protect();
  if (tied) m.output = RowsOf(m.token_embd, m.plan_.vocab);
  m.fingerprint_ = FingerprintOf(m.cfg_, held, !g.file().reserved());
  m.description_ = fmt::format("{} ({}, {} layers of {}, {} tensors)", g.name(), m.cfg_.arch, m.cfg_.n_layer, m.cfg_.n_embd,
                               g.tensors().size());
  return m;
}

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

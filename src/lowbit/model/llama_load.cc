// LlamaModel::Load: lists the weights a rank holds (WeightLister), reads them into the model's own
// image or views them in the file (model/shard.h), interleaves what the kernels run interleaved
// (numeric/interleave.h), and fingerprints the model for the ranks to compare. The forward is llama.cc.
#include "lowbit/model/llama.h"

#include <cmath>
#include <string>
#include <vector>

#include "lowbit/base/check.h"
#include "lowbit/kernels/dot.h"
#include "lowbit/model/llama_config.h"
#include "lowbit/numeric/bnb.h"
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
// kernel table runs (InterleavedFor) is rearranged in place and takes that type
// (numeric/interleave.h), for the 8-row kernels; its rows must be whole groups of 8, packed, of whole
// column groups. The embedding keeps the file's layout (looked up by row, and the tied classifier's
// rows).
void InterleaveImage(LlamaModel& m, uint8_t* image, uint64_t image_bytes) {
  const DotKernels& k = ActiveDotKernels();
  auto interleave = [&](WeightView& v) {
    if (v.data == nullptr || v.data < image || v.data >= image + image_bytes) return;
    const std::optional<GgmlType> x = InterleavedFor(k, v.type, v.rows, v.cols, v.row_stride);
    if (!x) return;
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

}  // namespace lowbit

// The architectures lowbit runs, as rows of options (llama.h's header says what each one adds), and
// the LlamaConfig read from a GGUF's `<arch>.*` metadata.
#include "lowbit/model/llama_config.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <string>

namespace lowbit {
namespace {

// The architectures this decoder runs (general.architecture as llama.cpp's converter writes it),
// each a row of options; the tensors a file has switch on the rest (fused Q/K/V, q/k norms, post
// norms, biases, RoPE factors). Facts from llama.cpp's src/models/<arch>.cpp and llama-model.cpp.
enum class Moe { kNever, kOptional, kAlways };
struct ArchRow {
  const char* name;
  bool neox;               // LLAMA_ROPE_TYPE_NEOX
  int ff_div;              // qwen: feed_forward_length is twice the FFN width
  bool gelu;               // GeGLU instead of SwiGLU
  bool embd_scale;         // embeddings times sqrt(n_embd)
  float attn_softcap;      // default attention soft-cap (0: none; then the key is not read either)
  float final_softcap;     // default final logit soft-cap (read from the metadata when present)
  int64_t swa_pattern;     // default sliding-window pattern: layer l slides when l % p < p - 1 (0: none)
  int64_t swa_window;      // default window; 0: sliding only when attention.sliding_window says so
  bool gemma_scale;        // query scale 1/sqrt(n_embd / n_head) for the 27B shapes (gemma_pytorch)
  Moe moe;                 // mixture-of-experts FFN: never, when expert_count says (llama: Mixtral), always
  bool moe_norm;           // the chosen experts' weights divided by their sum (build_moe_ffn's norm_w)
};
constexpr std::array<ArchRow, 10> kArchitectures = {{
    {"llama", false, 1, false, false, 0, 0, 0, 0, false, Moe::kOptional, true},
    {"qwen", true, 2, false, false, 0, 0, 0, 0, false, Moe::kNever, false},
    {"qwen2", true, 1, false, false, 0, 0, 0, 0, false, Moe::kNever, false},
    {"qwen3", true, 1, false, false, 0, 0, 0, 0, false, Moe::kNever, false},
    {"qwen2moe", true, 1, false, false, 0, 0, 0, 0, false, Moe::kAlways, false},
    {"qwen3moe", true, 1, false, false, 0, 0, 0, 0, false, Moe::kAlways, true},
    {"phi3", true, 1, false, false, 0, 0, 0, 0, false, Moe::kNever, false},
    {"gemma", true, 1, true, true, 0, 0, 0, 0, false, Moe::kNever, false},
    {"gemma2", true, 1, true, true, 50.0f, 30.0f, 2, 4096, true, Moe::kNever, false},
    {"gemma3", true, 1, true, true, 0, 0, 6, 0, true, Moe::kNever, false},
}};

// A float from the metadata, or `def`.
float FloatKey(const GgufFile& g, const std::string& key, float def) {
  const GgufValue* v = g.Find(key);
  return v != nullptr && v->AsFloat() ? static_cast<float>(*v->AsFloat()) : def;
}

// Sliding-window layers: attention.sliding_window_pattern as a number p (layer l slides when
// l % p < p - 1) or as an array of booleans, else the architecture's default pattern.
Status ReadSwaLayers(const GgufFile& g, const ArchRow& row, LlamaConfig* c) {
  const std::string key = c->arch + ".attention.sliding_window_pattern";
  c->swa_layers.assign(static_cast<size_t>(c->n_layer), 0);
  const GgufValue* v = g.Find(key);
  if (v != nullptr && v->is_array()) {
    if (v->elements().size() != static_cast<size_t>(c->n_layer)) {
      return Errorf("{}: {} has {} entries for {} layers", g.name(), key, v->elements().size(), c->n_layer);
    }
    for (size_t l = 0; l < v->elements().size(); ++l) {
      const auto b = v->elements()[l].AsUInt();
      if (!b) return Errorf("{}: {} entry {} is not a boolean", g.name(), key, l);
      c->swa_layers[l] = *b != 0 ? 1 : 0;
    }
    return OkStatus();
  }
  int64_t p = row.swa_pattern;
  if (v != nullptr) {
    if (!v->AsUInt()) return Errorf("{}: {} must be a number or an array of booleans", g.name(), key);
    p = static_cast<int64_t>(*v->AsUInt());
  }
  for (int64_t l = 0; l < c->n_layer; ++l) c->swa_layers[l] = p == 0 || l % p < p - 1 ? 1 : 0;
  return OkStatus();
}

// RoPE scaling as llama.cpp reads it: rope.scaling.type (linear by default; none, linear and
// longrope computed the same way here), rope.scaling.factor, .attn_factor, .original_context_length.
Status ReadRopeScaling(const GgufFile& g, LlamaConfig* c) {
  const std::string p = c->arch + ".rope.";
  if (const GgufValue* v = g.Find(p + "scaling.type"); v != nullptr && v->AsString()) {
    const std::string& t = *v->AsString();
    if (t == "yarn") return Errorf("{}: RoPE scaling '{}' is not supported yet (none, linear and longrope are)", g.name(), t);
    if (t != "none" && t != "linear" && t != "longrope") return Errorf("{}: unknown RoPE scaling type '{}'", g.name(), t);
    if (t == "none") return OkStatus();
  }
  float factor = FloatKey(g, p + "scaling.factor", 0.0f);
  if (factor == 0.0f) factor = FloatKey(g, p + "scale_linear", 0.0f);
  if (!(factor >= 0.0f) || !std::isfinite(factor)) return Errorf("{}: {}scaling.factor = {} is invalid", g.name(), p, factor);
  c->rope_freq_scale = factor == 0.0f ? 1.0f : 1.0f / factor;
  c->rope_attn_factor = FloatKey(g, p + "scaling.attn_factor", 1.0f);
  if (const GgufValue* v = g.Find(p + "scaling.original_context_length"); v && v->AsUInt()) {
    c->n_ctx_orig = static_cast<int64_t>(*v->AsUInt());
  }
  return OkStatus();
}

// The mixture-of-experts FFN (llama.cpp's build_moe_ffn with softmax gating): expert_count experts
// of expert_feed_forward_length columns (llama: feed_forward_length; qwen2moe/qwen3moe without the
// key: feed_forward_length / expert_used_count, as llama.cpp), expert_used_count of them per token,
// and qwen2moe's shared expert of expert_shared_feed_forward_length (default feed_forward_length).
Status ReadExperts(const GgufFile& g, const ArchRow& row, LlamaConfig* c) {
  const std::string a = c->arch + ".";
  auto number = [&](const std::string& key, int64_t def, int64_t max) -> Expected<int64_t> {
    const GgufValue* v = g.Find(a + key);
    if (v == nullptr) return def;
    if (!v->AsUInt()) return Errorf("{}: {}{} must be a number (one value for every layer)", g.name(), a, key);
    if (*v->AsUInt() > static_cast<uint64_t>(max)) return Errorf("{}: {}{} = {} is out of range", g.name(), a, key, *v->AsUInt());
    return static_cast<int64_t>(*v->AsUInt());
  };
  LOWBIT_ASSIGN_OR_RETURN(c->n_expert, number("expert_count", 0, 4096));
  if (row.moe == Moe::kNever) {
    if (c->n_expert > 0) return Errorf("{}: {} has expert_count {}, but lowbit runs {} as a dense model only", g.name(), c->arch, c->n_expert, c->arch);
    c->n_expert = 0;
    return OkStatus();
  }
  if (c->n_expert == 0) {
    if (row.moe == Moe::kAlways) return Errorf("{}: {}expert_count is missing or 0; {} is a mixture of experts", g.name(), a, c->arch);
    return OkStatus();
  }
  LOWBIT_ASSIGN_OR_RETURN(c->n_expert_used, number("expert_used_count", 0, c->n_expert));
  if (c->n_expert_used == 0) return Errorf("{}: {}expert_used_count must be 1..{} (expert_count)", g.name(), a, c->n_expert);
  const int64_t def = row.moe == Moe::kOptional ? c->n_ff : c->n_ff / c->n_expert_used;
  LOWBIT_ASSIGN_OR_RETURN(c->n_ff_exp, number("expert_feed_forward_length", def, 1 << 24));
  if (c->n_ff_exp == 0) return Errorf("{}: {}expert_feed_forward_length is 0", g.name(), a);
  if (g.FindTensor("blk.0.ffn_gate_shexp.weight") != nullptr) {
    LOWBIT_ASSIGN_OR_RETURN(c->n_ff_shexp, number("expert_shared_feed_forward_length", c->n_ff, 1 << 24));
    if (c->n_ff_shexp == 0) return Errorf("{}: {}expert_shared_feed_forward_length is 0", g.name(), a);
  }
  c->expert_weights_norm = row.moe_norm;
  return OkStatus();
}

}  // namespace

Expected<LlamaConfig> ReadLlamaConfig(const GgufFile& g) {
  LOWBIT_ASSIGN_OR_RETURN(std::string arch, g.GetString("general.architecture"));
  const ArchRow* row = nullptr;
  for (const ArchRow& r : kArchitectures) {
    if (arch == r.name) row = &r;
  }
  if (row == nullptr) return Errorf("{}: architecture '{}' is not supported; lowbit runs {}", g.name(), arch, KnownArchitectures());
  auto u = [&](const std::string& key) -> Expected<int64_t> {
    LOWBIT_ASSIGN_OR_RETURN(uint64_t v, g.GetUInt(arch + "." + key));
    if (v == 0 || v > (1u << 24)) return Errorf("{}: {}.{} = {} is out of range", g.name(), arch, key, v);
    return static_cast<int64_t>(v);
  };
  LlamaConfig c;
  c.arch = arch;
  c.rope_neox = row->neox;
  LOWBIT_ASSIGN_OR_RETURN(c.n_embd, u("embedding_length"));
  LOWBIT_ASSIGN_OR_RETURN(c.n_layer, u("block_count"));
  LOWBIT_ASSIGN_OR_RETURN(c.n_head, u("attention.head_count"));
  LOWBIT_ASSIGN_OR_RETURN(c.n_ff, u("feed_forward_length"));
  LOWBIT_ASSIGN_OR_RETURN(c.n_ctx_train, u("context_length"));
  c.n_head_kv = g.Find(arch + ".attention.head_count_kv") ? *u("attention.head_count_kv") : c.n_head;
  if (c.n_head % c.n_head_kv != 0) return Errorf("{}: {} heads are not a multiple of {} KV heads", g.name(), c.n_head, c.n_head_kv);
  if (c.n_ff % row->ff_div != 0) return Errorf("{}: {}.feed_forward_length {} is odd", g.name(), arch, c.n_ff);
  c.n_ff /= row->ff_div;
  if (g.Find(arch + ".attention.key_length")) {
    LOWBIT_ASSIGN_OR_RETURN(c.head_dim, u("attention.key_length"));
    const int64_t v = g.Find(arch + ".attention.value_length") ? *u("attention.value_length") : c.head_dim;
    if (v != c.head_dim) return Errorf("{}: key length {} and value length {} differ; lowbit needs them equal", g.name(), c.head_dim, v);
  } else {
    if (c.n_embd % c.n_head != 0) return Errorf("{}: {} heads do not divide embedding length {}", g.name(), c.n_head, c.n_embd);
    c.head_dim = c.n_embd / c.n_head;
  }
  c.rope_dim = g.Find(arch + ".rope.dimension_count") ? *u("rope.dimension_count") : c.head_dim;
  if (c.rope_dim > c.head_dim || c.rope_dim % 2 != 0) return Errorf("{}: rope dimension {} is invalid", g.name(), c.rope_dim);
  c.rope_freq_base = FloatKey(g, arch + ".rope.freq_base", c.rope_freq_base);
  c.rms_eps = FloatKey(g, arch + ".attention.layer_norm_rms_epsilon", c.rms_eps);
  LOWBIT_RETURN_IF_ERROR(ReadRopeScaling(g, &c));
  if (c.n_ctx_orig == 0) c.n_ctx_orig = c.n_ctx_train;
  // Sliding window (gemma2: always, 4096 unless said; gemma3: when attention.sliding_window is set).
  c.n_swa = row->swa_window;
  if (const GgufValue* v = g.Find(arch + ".attention.sliding_window"); v && v->AsUInt()) c.n_swa = static_cast<int64_t>(*v->AsUInt());
  if (row->swa_pattern == 0) c.n_swa = 0;  // phi3's window is off in llama.cpp too
  if (c.n_swa > 0) {
    LOWBIT_RETURN_IF_ERROR(ReadSwaLayers(g, *row, &c));
    // gemma2: the sliding layers keep the global base unless rope.freq_base_swa says; gemma3: 10000.
    c.rope_freq_base_swa = FloatKey(g, arch + ".rope.freq_base_swa", arch == "gemma2" ? c.rope_freq_base : 10000.0f);
  } else {
    c.swa_layers.assign(static_cast<size_t>(c.n_layer), 0);
  }
  c.attn_softcap = row->attn_softcap > 0 ? FloatKey(g, arch + ".attn_logit_softcapping", row->attn_softcap) : 0.0f;
  c.final_softcap = FloatKey(g, arch + ".final_logit_softcapping", row->final_softcap);
  if (!(c.attn_softcap >= 0) || !(c.final_softcap >= 0)) return Errorf("{}: a logit soft-cap is negative", g.name());
  // Query scale: 1/sqrt(head_dim); gemma2/3 27B (46 / 62 layers): 1/sqrt(n_embd / n_head), as llama.cpp.
  const bool big_gemma = row->gemma_scale && ((arch == "gemma2" && c.n_layer == 46) || (arch == "gemma3" && c.n_layer == 62));
  c.attn_scale = 1.0f / std::sqrt(static_cast<float>(big_gemma ? c.n_embd / c.n_head : c.head_dim));
  c.embd_scale = row->embd_scale ? std::sqrt(static_cast<float>(c.n_embd)) : 1.0f;
  c.ffn_gelu = row->gelu;
  LOWBIT_RETURN_IF_ERROR(ReadExperts(g, *row, &c));
  const GgufTensorInfo* emb = g.FindTensor("token_embd.weight");
  if (emb == nullptr || emb->n_dims != 2) return Errorf("{}: tensor 'token_embd.weight' is missing", g.name());
  c.n_vocab = static_cast<int64_t>(emb->dims[1]);
  return c;
}

// A weight (or bias) this rank holds: the part of a tensor, and the view it becomes.

std::string KnownArchitectures() {
  std::string s;
  for (const ArchRow& r : kArchitectures) s += std::string(s.empty() ? "" : ", ") + r.name;
  return s;
}

}  // namespace lowbit

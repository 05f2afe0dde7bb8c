// Checking adapters against a base model and attaching them for run-time application (lora_file.h).
#include <algorithm>
#include <charconv>

#include "lowbit/train/lora_file.h"

namespace lowbit::train {
namespace {

// The model's view of a weight by GGUF name, or nullptr for names without a low-rank slot.
WeightView* WeightByName(LlamaModel* m, std::string_view name) {
  if (name == "output.weight") return &m->output;
  if (!name.starts_with("blk.")) return nullptr;
  name.remove_prefix(4);
  int64_t l = -1;
  const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), l);
  if (ec != std::errc() || l < 0 || l >= static_cast<int64_t>(m->layers.size()) || end == name.data() + name.size() || *end != '.') {
    return nullptr;
  }
  const std::string_view w = name.substr(static_cast<size_t>(end - name.data()) + 1);
  LlamaModel::Layer& L = m->layers[static_cast<size_t>(l)];
  if (w == "attn_q.weight") return &L.wq;
  if (w == "attn_k.weight") return &L.wk;
  if (w == "attn_v.weight") return &L.wv;
  if (w == "attn_output.weight") return &L.wo;
  if (w == "ffn_gate.weight") return &L.gate;
  if (w == "ffn_up.weight") return &L.up;
  if (w == "ffn_down.weight") return &L.down;
  return nullptr;
}

}  // namespace

Status CheckLoraAgainst(const LoraAdapter& a, const GgufFile& base, const LlamaConfig& cfg) {
  if (!a.arch.empty() && a.arch != cfg.arch) {
    return Errorf("{}: the adapter is for architecture '{}', the model '{}' is '{}'", a.source, a.arch, base.name(), cfg.arch);
  }
  for (const LoraTensor& t : a.tensors) {
    if (t.base == "token_embd.weight") {
      return Errorf("{}: the adapter changes token_embd.weight; LoRA on the embedding is not supported", a.source);
    }
    const GgufTensorInfo* w = base.FindTensor(t.base);
    if (w == nullptr) {
      return Errorf("{}: adapter tensor '{}' has no base weight in {}; the adapter was made for another model", a.source, t.base,
                    base.name());
    }
    const auto cols = static_cast<int64_t>(w->dims[0]), rows = w->n_dims > 1 ? static_cast<int64_t>(w->dims[1]) : 1;
    if (w->n_dims != 2 || cols != t.cols || rows != t.rows) {
      return Errorf("{}: '{}' is {} in {} but the adapter's B A is [{}, {}] (rank {}); the adapter was made for another model",
                    a.source, t.base, w->ShapeString(), base.name(), t.cols, t.rows, t.rank);
    }
  }
  return OkStatus();
}

void LoraSet::Detach(LlamaModel* model) const {
  model->output.updates = {};
  for (LlamaModel::Layer& L : model->layers) {
    for (WeightView* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.gate, &L.up, &L.down}) w->updates = {};
  }
}

Expected<std::unique_ptr<LoraSet>> AttachLoraAdapters(LlamaModel* model, const GgufFile& base, std::span<const LoraSpec> specs) {
  auto set = std::make_unique<LoraSet>();
  if (specs.empty()) return set;
  if (model->ranks() != 1) {
    return Errorf("LoRA adapters on a model split over {} ranks are not supported; merge the adapter into the model with "
                  "'lowbit lora merge' first", model->ranks());
  }
  set->adapters_.reserve(specs.size());
  for (const LoraSpec& s : specs) {
    LOWBIT_ASSIGN_OR_RETURN(LoraAdapter a, ReadLoraAdapter(s.path, model->config()));
    LOWBIT_RETURN_IF_ERROR(CheckLoraAgainst(a, base, model->config()));
    for (const LoraTensor& t : a.tensors) {
      if (WeightByName(model, t.base) == nullptr) {
        return Errorf("{}: '{}' is not a weight lowbit can apply an adapter to (the attention and FFN projections and "
                      "output.weight)", a.source, t.base);
      }
    }
    set->adapters_.push_back(std::move(a));
  }
  // One update list per adapted weight, in the order the adapters were given.
  std::vector<std::pair<WeightView*, std::vector<LowRankUpdate>>> lists;
  for (size_t i = 0; i < specs.size(); ++i) {
    for (const LoraTensor& t : set->adapters_[i].tensors) {
      WeightView* w = WeightByName(model, t.base);
      auto it = std::find_if(lists.begin(), lists.end(), [w](const auto& p) { return p.first == w; });
      if (it == lists.end()) it = lists.insert(lists.end(), {w, {}});
      it->second.push_back({.a = t.a.data(), .b = t.b.data(), .rank = t.rank, .scale = specs[i].scale * t.scale});
    }
  }
  set->lists_.reserve(lists.size());
  for (auto& [w, updates] : lists) {
    set->lists_.push_back(std::move(updates));
    w->updates = set->lists_.back();
  }
  return set;
}

}  // namespace lowbit::train

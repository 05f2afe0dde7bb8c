// llama.cpp's GGUF LoRA adapters: reading, writing (lora_file.h).
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>

#include "lowbit/formats/gguf_writer.h"
#include "lowbit/numeric/convert.h"
#include "lowbit/numeric/dequant.h"
#include "lowbit/train/lora_file.h"

namespace lowbit::train {
namespace {

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// A 2-D adapter tensor as F32, [rows][cols] with cols = dims[0].
Expected<std::vector<float>> ReadMatrix(const GgufFile& g, const GgufTensorInfo& t) {
  if (t.n_dims != 2) return Errorf("{}: LoRA tensor '{}' has shape {}, expected 2 dimensions", g.name(), t.name, t.ShapeString());
  ToFloatFn f = ToFloatFor(t.type);
  if (f == nullptr) return Errorf("{}: LoRA tensor '{}' is {}, which lowbit cannot read", g.name(), t.name, TypeInfo(t.type).name);
  std::vector<float> out(static_cast<size_t>(t.n_elements));
  f(t.data, out.data(), static_cast<int64_t>(t.n_elements));
  for (float v : out) {
    if (!std::isfinite(v)) return Errorf("{}: LoRA tensor '{}' holds a NaN or infinity", g.name(), t.name);
  }
  return out;
}

}  // namespace

const LoraTensor* LoraAdapter::Find(std::string_view base) const {
  for (const LoraTensor& t : tensors) {
    if (t.base == base) return &t;
  }
  return nullptr;
}

Expected<LoraAdapter> LoraFromGguf(const GgufFile& g) {
  auto str = [&](const char* key) -> std::string {
    const GgufValue* v = g.Find(key);
    return v != nullptr && v->AsString() != nullptr ? *v->AsString() : std::string();
  };
  if (str("general.type") != "adapter") {
    return Errorf("{}: general.type is '{}', not 'adapter': not a LoRA adapter file", g.name(), str("general.type"));
  }
  if (str("adapter.type") != "lora") {
    return Errorf("{}: adapter.type is '{}', expected 'lora'", g.name(), str("adapter.type"));
  }
  LoraAdapter a;
  a.source = g.name();
  a.arch = str("general.architecture");
  if (a.arch.empty()) return Errorf("{}: general.architecture is missing; the adapter does not say which model it is for", g.name());
  if (const GgufValue* v = g.Find("adapter.lora.alpha")) {
    if (v->type() != GgufValueType::kF32 || !v->AsFloat() || !std::isfinite(*v->AsFloat())) {
      return Errorf("{}: adapter.lora.alpha must be a finite f32", g.name());
    }
    a.alpha = static_cast<float>(*v->AsFloat());
  }
  // Pair the .lora_a / .lora_b tensors by base name (sorted, as llama.cpp's map).
  std::map<std::string, std::pair<const GgufTensorInfo*, const GgufTensorInfo*>> pairs;
  for (const GgufTensorInfo& t : g.tensors()) {
    if (EndsWith(t.name, ".lora_a")) {
      pairs[t.name.substr(0, t.name.size() - 7)].first = &t;
    } else if (EndsWith(t.name, ".lora_b")) {
      pairs[t.name.substr(0, t.name.size() - 7)].second = &t;
    } else if (EndsWith(t.name, "_norm.weight")) {
      a.skipped.push_back(t.name);
    } else {
      return Errorf("{}: tensor '{}' is neither a .lora_a nor a .lora_b tensor", g.name(), t.name);
    }
  }
  if (pairs.empty()) return Errorf("{}: the adapter has no LoRA tensors", g.name());
  for (const auto& [base, ab] : pairs) {
    if (ab.first == nullptr || ab.second == nullptr) {
      return Errorf("{}: '{}' has a {} but no {}", g.name(), base, ab.first ? "lora_a" : "lora_b", ab.first ? "lora_b" : "lora_a");
    }
    const GgufTensorInfo &ta = *ab.first, &tb = *ab.second;
    LoraTensor t;
    t.base = base;
    t.cols = static_cast<int64_t>(ta.dims[0]);
    t.rank = static_cast<int64_t>(ta.dims[1]);
    t.rows = static_cast<int64_t>(tb.dims[1]);
    if (ta.n_dims != 2 || tb.n_dims != 2 || static_cast<int64_t>(tb.dims[0]) != t.rank) {
      return Errorf("{}: '{}': lora_a {} and lora_b {} do not fit ([cols, rank] and [rank, rows])", g.name(), base, ta.ShapeString(),
                    tb.ShapeString());
    }
    if (t.rank <= 0 || t.rank > t.cols || t.rank > t.rows) {
      return Errorf("{}: '{}': rank {} for a {} x {} weight", g.name(), base, t.rank, t.rows, t.cols);
    }
    LOWBIT_ASSIGN_OR_RETURN(t.a, ReadMatrix(g, ta));
    LOWBIT_ASSIGN_OR_RETURN(t.b, ReadMatrix(g, tb));
    t.scale = a.alpha != 0.0f ? a.alpha / static_cast<float>(t.rank) : 1.0f;
    a.tensors.push_back(std::move(t));
  }
  return a;
}

Status WriteLoraGguf(const LoraAdapter& a, const std::string& arch, const std::string& path, GgmlType type) {
  if (type != GgmlType::kF32 && type != GgmlType::kF16 && type != GgmlType::kBF16) {
    return Errorf("{}: LoRA tensors are written as F32, F16 or BF16, not {}", path, TypeInfo(type).name);
  }
  // One alpha for all tensors when every scale is alpha / rank for the same alpha; else fold.
  float alpha = a.tensors.empty() ? 0.0f : a.tensors[0].scale * static_cast<float>(a.tensors[0].rank);
  for (const LoraTensor& t : a.tensors) {
    if (std::fabs(t.scale * static_cast<float>(t.rank) - alpha) > 1e-6f * std::fabs(alpha)) alpha = 0.0f;
  }
  GgufWriter w;
  w.SetKv("general.architecture", GgufValue::String(arch));
  w.SetKv("general.type", GgufValue::String("adapter"));
  w.SetKv("general.name", GgufValue::String(std::filesystem::path(path).stem().string()));
  w.SetKv("adapter.type", GgufValue::String("lora"));
  w.SetKv("adapter.lora.alpha", GgufValue::F32(alpha));
  auto put = [&](const std::vector<float>* v, float fold) {
    return [v, fold, type](std::span<uint8_t> out) -> Status {
      std::vector<float> tmp(*v);
      if (fold != 1.0f) {
        for (float& x : tmp) x *= fold;
      }
      if (type == GgmlType::kF32) std::memcpy(out.data(), tmp.data(), out.size());
      else if (type == GgmlType::kF16) ConvertF32ToF16(tmp.data(), reinterpret_cast<uint16_t*>(out.data()), tmp.size());
      else ConvertF32ToBf16(tmp.data(), reinterpret_cast<uint16_t*>(out.data()), tmp.size());
      return OkStatus();
    };
  };
  for (const LoraTensor& t : a.tensors) {
    const float fold = alpha != 0.0f ? 1.0f : t.scale;
    const uint64_t da[2] = {static_cast<uint64_t>(t.cols), static_cast<uint64_t>(t.rank)};
    const uint64_t db[2] = {static_cast<uint64_t>(t.rank), static_cast<uint64_t>(t.rows)};
    LOWBIT_RETURN_IF_ERROR(w.AddTensor(t.base + ".lora_a", type, da, put(&t.a, 1.0f)));
    LOWBIT_RETURN_IF_ERROR(w.AddTensor(t.base + ".lora_b", type, db, put(&t.b, fold)));
  }
  return w.Write(path);
}

}  // namespace lowbit::train

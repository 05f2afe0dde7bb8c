// PEFT LoRA folders: adapter_config.json + adapter_model.safetensors (lora_file.h).
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <regex>

#include <nlohmann/json.hpp>

#include "lowbit/base/atomic_file.h"
#include "lowbit/formats/hf.h"
#include "lowbit/formats/safetensors.h"
#include "lowbit/numeric/half.h"
#include "lowbit/pipeline/convert.h"
#include "lowbit/train/lora_file.h"

namespace lowbit::train {
namespace {

namespace fs = std::filesystem;

// Hugging Face module path <-> GGUF weight name for the llama family.
struct ModuleName {
  const char* hf;    // after "model.layers.N."
  const char* gguf;  // after "blk.N."
};
constexpr ModuleName kModules[] = {
    {"self_attn.q_proj", "attn_q.weight"},   {"self_attn.k_proj", "attn_k.weight"}, {"self_attn.v_proj", "attn_v.weight"},
    {"self_attn.o_proj", "attn_output.weight"}, {"mlp.gate_proj", "ffn_gate.weight"}, {"mlp.up_proj", "ffn_up.weight"},
    {"mlp.down_proj", "ffn_down.weight"},
};

// "model.layers.3.self_attn.q_proj" -> "blk.3.attn_q.weight"; "lm_head" -> "output.weight".
std::string GgufNameOf(const std::string& module) {
  if (module == "lm_head") return "output.weight";
  static const std::regex re(R"(model\.layers\.(\d{1,6})\.(.+))");
  std::smatch m;
  if (!std::regex_match(module, m, re)) return "";
  for (const ModuleName& n : kModules) {
    if (m[2].str() == n.hf) return "blk." + m[1].str() + "." + n.gguf;
  }
  return "";
}

std::string HfModuleOf(const std::string& gguf) {
  if (gguf == "output.weight") return "lm_head";
  static const std::regex re(R"(blk\.(\d{1,6})\.(.+))");
  std::smatch m;
  if (!std::regex_match(gguf, m, re)) return "";
  for (const ModuleName& n : kModules) {
    if (m[2].str() == n.gguf) return "model.layers." + m[1].str() + "." + n.hf;
  }
  return "";
}

// The short module name PEFT's target_modules lists ("q_proj").
std::string ShortName(const std::string& module) {
  const size_t dot = module.rfind('.');
  return dot == std::string::npos ? module : module.substr(dot + 1);
}

// PEFT's pattern rule: the key matches the end of the module path at a dot boundary.
template <typename V>
const V* MatchPattern(const std::vector<std::pair<std::string, V>>& patterns, const std::string& module, Status* error) {
  for (const auto& [key, value] : patterns) {
    try {
      if (std::regex_match(module, std::regex("(.*\\.)?(" + key + ")"))) return &value;
    } catch (const std::regex_error&) {
      *error = Errorf("pattern '{}' is not a valid regular expression", key);
      return nullptr;
    }
  }
  return nullptr;
}

// Q and K rows: HF rotate_half order <-> GGUF adjacent pairs (for non-NeoX RoPE).
uint32_t PermutedHeads(const std::string& gguf, const LlamaConfig& c) {
  if (c.rope_neox) return 0;
  if (gguf.ends_with(".attn_q.weight")) return static_cast<uint32_t>(c.n_head);
  if (gguf.ends_with(".attn_k.weight")) return static_cast<uint32_t>(c.n_head_kv);
  return 0;
}

Expected<std::vector<float>> ToF32(const StTensor& t, const std::string& file) {
  std::vector<float> out(static_cast<size_t>(t.n_elements()));
  switch (t.dtype) {
    case StDtype::kF32: std::memcpy(out.data(), t.data.data(), out.size() * 4); break;
    case StDtype::kF16:
      for (size_t i = 0; i < out.size(); ++i) {
        uint16_t h;
        std::memcpy(&h, t.data.data() + 2 * i, 2);
        out[i] = Fp16ToFp32(h);
      }
      break;
    case StDtype::kBF16:
      for (size_t i = 0; i < out.size(); ++i) {
        uint16_t h;
        std::memcpy(&h, t.data.data() + 2 * i, 2);
        out[i] = Bf16ToFp32(h);
      }
      break;
    default:
      return Errorf("{}: tensor '{}' is {}; LoRA tensors must be F32, F16 or BF16", file, t.name, StDtypeName(t.dtype));
  }
  for (float v : out) {
    if (!std::isfinite(v)) return Errorf("{}: tensor '{}' holds a NaN or infinity", file, t.name);
  }
  return out;
}

}  // namespace

Expected<PeftConfig> ParsePeftConfig(std::string_view text, const std::string& name) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    return Errorf("{}: not valid JSON: {}", name, e.what());
  }
  if (!j.is_object()) return Errorf("{}: expected a JSON object", name);
  auto has = [&](const char* k) { return j.contains(k) && !j[k].is_null(); };
  if (has("peft_type") && (!j["peft_type"].is_string() || j["peft_type"] != "LORA")) {
    return Errorf("{}: peft_type is {}, only LORA adapters are supported", name, j["peft_type"].dump());
  }
  if (has("use_dora") && j["use_dora"] != false) return Errorf("{}: use_dora is set; DoRA adapters are not supported", name);
  if (has("fan_in_fan_out") && j["fan_in_fan_out"] != false) {
    return Errorf("{}: fan_in_fan_out is set (Conv1D weights); llama-family adapters store [out, in]", name);
  }
  if (has("modules_to_save") && !(j["modules_to_save"].is_array() && j["modules_to_save"].empty())) {
    return Errorf("{}: modules_to_save {} holds full weights, which a LoRA adapter file of lowbit cannot carry; merge them "
                  "into the base model first", name, j["modules_to_save"].dump());
  }
  if (has("bias") && j["bias"] != "none") return Errorf("{}: bias is {}; trained biases are not supported", name, j["bias"].dump());
  PeftConfig c;
  if (!j.contains("r") || !j["r"].is_number_integer() || j["r"].get<int64_t>() <= 0 || j["r"].get<int64_t>() > (1 << 20)) {
    return Errorf("{}: 'r' (the rank) must be a positive integer", name);
  }
  c.r = j["r"].get<int64_t>();
  if (!j.contains("lora_alpha") || !j["lora_alpha"].is_number() || !std::isfinite(j["lora_alpha"].get<double>())) {
    return Errorf("{}: 'lora_alpha' must be a number", name);
  }
  c.lora_alpha = j["lora_alpha"].get<double>();
  if (has("use_rslora")) {
    if (!j["use_rslora"].is_boolean()) return Errorf("{}: 'use_rslora' must be true or false", name);
    c.use_rslora = j["use_rslora"].get<bool>();
  }
  if (has("target_modules")) {
    const auto& t = j["target_modules"];
    if (t.is_string()) {
      c.target_modules.push_back(t.get<std::string>());
    } else if (t.is_array()) {
      for (const auto& m : t) {
        if (!m.is_string()) return Errorf("{}: target_modules must hold strings", name);
        c.target_modules.push_back(m.get<std::string>());
      }
    } else {
      return Errorf("{}: target_modules must be a list or a string", name);
    }
  }
  for (const char* key : {"rank_pattern", "alpha_pattern"}) {
    if (!has(key)) continue;
    if (!j[key].is_object()) return Errorf("{}: '{}' must be an object", name, key);
    for (const auto& [k, v] : j[key].items()) {
      if (std::string(key) == "rank_pattern") {
        if (!v.is_number_integer() || v.get<int64_t>() <= 0) return Errorf("{}: rank_pattern['{}'] must be a positive integer", name, k);
        c.rank_pattern.emplace_back(k, v.get<int64_t>());
      } else {
        if (!v.is_number() || !std::isfinite(v.get<double>())) return Errorf("{}: alpha_pattern['{}'] must be a number", name, k);
        c.alpha_pattern.emplace_back(k, v.get<double>());
      }
    }
  }
  return c;
}

Expected<LoraAdapter> ReadPeftAdapter(const std::string& dir, const LlamaConfig& base) {
  const fs::path d(dir);
  const std::string cfg_path = (d / "adapter_config.json").string();
  if (!fs::exists(cfg_path)) return Errorf("{}: no adapter_config.json; not a PEFT adapter folder", dir);
  LOWBIT_ASSIGN_OR_RETURN(std::string text, ReadTextFile(cfg_path, 1 << 20));
  LOWBIT_ASSIGN_OR_RETURN(PeftConfig cfg, ParsePeftConfig(text, cfg_path));
  const std::string st_path = (d / "adapter_model.safetensors").string();
  if (!fs::exists(st_path)) {
    if (fs::exists(d / "adapter_model.bin")) {
      return Errorf("{}: only adapter_model.bin (a PyTorch pickle) is there; save the adapter with safe_serialization=True", dir);
    }
    return Errorf("{}: adapter_model.safetensors is missing", dir);
  }
  LOWBIT_ASSIGN_OR_RETURN(SafetensorsFile st, SafetensorsFile::Open(st_path));
  LoraAdapter a;
  a.source = dir;
  a.alpha = static_cast<float>(cfg.lora_alpha);
  std::map<std::string, std::pair<const StTensor*, const StTensor*>> pairs;  // module -> (A, B)
  static const std::regex key_re(R"(base_model\.model\.(.+)\.lora_(A|B)(\.[A-Za-z0-9_]+)?\.weight)");
  for (const StTensor& t : st.tensors()) {
    std::smatch m;
    if (t.name.find("lora_embedding_") != std::string::npos) {
      return Errorf("{}: tensor '{}' adapts the embedding, which lowbit does not support", st_path, t.name);
    }
    if (t.name.find("lora_magnitude_vector") != std::string::npos) {
      return Errorf("{}: tensor '{}' is DoRA's magnitude; DoRA adapters are not supported", st_path, t.name);
    }
    if (!std::regex_match(t.name, m, key_re)) {
      return Errorf("{}: tensor '{}' is not a LoRA A or B weight ('base_model.model.<module>.lora_A.weight')", st_path, t.name);
    }
    auto& p = pairs[m[1].str()];
    (m[2] == "A" ? p.first : p.second) = &t;
  }
  if (pairs.empty()) return Errorf("{}: the adapter has no tensors", st_path);
  for (const auto& [module, ab] : pairs) {
    if (ab.first == nullptr || ab.second == nullptr) {
      return Errorf("{}: module '{}' has lora_{} but no lora_{}", st_path, module, ab.first ? "A" : "B", ab.first ? "B" : "A");
    }
    const std::string gguf = GgufNameOf(module);
    if (gguf.empty()) return Errorf("{}: module '{}' is not a llama weight lowbit knows (q/k/v/o_proj, gate/up/down_proj, lm_head)", st_path, module);
    const StTensor &ta = *ab.first, &tb = *ab.second;
    if (ta.shape.size() != 2 || tb.shape.size() != 2 || ta.shape[0] != tb.shape[1]) {
      return Errorf("{}: module '{}': lora_A [{}] and lora_B [{}] do not fit ([r, in] and [out, r])", st_path, module,
                    fmt::join(ta.shape, ", "), fmt::join(tb.shape, ", "));
    }
    LoraTensor t;
    t.base = gguf;
    t.rank = static_cast<int64_t>(ta.shape[0]);
    t.cols = static_cast<int64_t>(ta.shape[1]);
    t.rows = static_cast<int64_t>(tb.shape[0]);
    Status err;
    const int64_t* r = MatchPattern(cfg.rank_pattern, module, &err);
    const double* al = MatchPattern(cfg.alpha_pattern, module, &err);
    if (!err.ok()) return Status::Error(cfg_path + ": " + err.message());
    const int64_t want_rank = r != nullptr ? *r : cfg.r;
    if (t.rank != want_rank) return Errorf("{}: module '{}' has rank {}, the config says {}", st_path, module, t.rank, want_rank);
    const double alpha = al != nullptr ? *al : cfg.lora_alpha;
    const double denom = cfg.use_rslora ? std::sqrt(static_cast<double>(t.rank)) : static_cast<double>(t.rank);
    t.scale = static_cast<float>(alpha / denom);
    LOWBIT_ASSIGN_OR_RETURN(t.a, ToF32(ta, st_path));
    LOWBIT_ASSIGN_OR_RETURN(std::vector<float> b, ToF32(tb, st_path));
    const uint32_t heads = PermutedHeads(gguf, base);
    if (heads > 0 && (t.rows % heads != 0 || (t.rows / heads) % 2 != 0)) {
      return Errorf("{}: module '{}' has {} rows, which do not split into {} heads of pairs", st_path, module, t.rows, heads);
    }
    t.b.resize(b.size());
    for (int64_t row = 0; row < t.rows; ++row) {
      const uint64_t src = heads > 0 ? UnpermuteSourceRow(static_cast<uint64_t>(row), static_cast<uint64_t>(t.rows), heads)
                                     : static_cast<uint64_t>(row);
      std::memcpy(t.b.data() + row * t.rank, b.data() + src * static_cast<uint64_t>(t.rank), static_cast<size_t>(t.rank) * 4);
    }
    a.tensors.push_back(std::move(t));
  }
  return a;
}

Expected<LoraAdapter> ReadLoraAdapter(const std::string& path, const LlamaConfig& base) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return ReadPeftAdapter(path, base);
  if (!fs::exists(path, ec)) return Errorf("{}: no such file or folder", path);
  LOWBIT_ASSIGN_OR_RETURN(GgufFile g, GgufFile::Open(path));
  return LoraFromGguf(g);
}

Status WritePeftAdapter(const LoraAdapter& a, const LlamaConfig& base, const std::string& dir, const std::string& base_model_name) {
  if (a.tensors.empty()) return Errorf("{}: the adapter has no tensors", dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Errorf("{}: cannot create the folder: {}", dir, ec.message());
  // One r and alpha when all tensors agree; otherwise rank_pattern and alpha_pattern per module.
  const int64_t r = a.tensors[0].rank;
  const double alpha = static_cast<double>(a.tensors[0].scale) * static_cast<double>(r);
  nlohmann::json rank_pattern = nlohmann::json::object(), alpha_pattern = nlohmann::json::object();
  std::vector<std::string> targets;
  SafetensorsWriter w;
  w.SetMetadata("format", "pt");
  for (const LoraTensor& t : a.tensors) {
    const std::string module = HfModuleOf(t.base);
    if (module.empty()) return Errorf("{}: weight '{}' has no Hugging Face module name lowbit knows", dir, t.base);
    if (t.rank != r) rank_pattern[module] = t.rank;
    const double talpha = static_cast<double>(t.scale) * static_cast<double>(t.rank);
    if (std::fabs(talpha - alpha) > 1e-6 * std::fabs(alpha)) alpha_pattern[module] = talpha;
    const std::string s = ShortName(module);
    if (std::find(targets.begin(), targets.end(), s) == targets.end()) targets.push_back(s);
    const std::string prefix = "base_model.model." + module;
    const LoraTensor* tp = &t;
    LOWBIT_RETURN_IF_ERROR(w.Add(prefix + ".lora_A.weight", StDtype::kF32, {static_cast<uint64_t>(t.rank), static_cast<uint64_t>(t.cols)},
                                 [tp](std::span<uint8_t> out) {
                                   std::memcpy(out.data(), tp->a.data(), out.size());
                                   return OkStatus();
                                 }));
    const uint32_t heads = PermutedHeads(t.base, base);
    LOWBIT_RETURN_IF_ERROR(w.Add(prefix + ".lora_B.weight", StDtype::kF32, {static_cast<uint64_t>(t.rows), static_cast<uint64_t>(t.rank)},
                                 [tp, heads](std::span<uint8_t> out) {
                                   // Back to HF order: GGUF row `row` came from HF row UnpermuteSourceRow(row).
                                   auto* dst = reinterpret_cast<float*>(out.data());
                                   for (int64_t row = 0; row < tp->rows; ++row) {
                                     const uint64_t hf = heads > 0 ? UnpermuteSourceRow(static_cast<uint64_t>(row),
                                                                                        static_cast<uint64_t>(tp->rows), heads)
                                                                   : static_cast<uint64_t>(row);
                                     std::memcpy(dst + hf * static_cast<uint64_t>(tp->rank), tp->b.data() + row * tp->rank,
                                                 static_cast<size_t>(tp->rank) * 4);
                                   }
                                   return OkStatus();
                                 }));
  }
  LOWBIT_RETURN_IF_ERROR(w.Write((fs::path(dir) / "adapter_model.safetensors").string()));
  nlohmann::json cfg = {
      {"peft_type", "LORA"}, {"task_type", "CAUSAL_LM"}, {"base_model_name_or_path", base_model_name},
      {"r", r}, {"lora_alpha", alpha}, {"use_rslora", false}, {"use_dora", false}, {"bias", "none"},
      {"fan_in_fan_out", false}, {"lora_dropout", 0.0}, {"inference_mode", true}, {"modules_to_save", nullptr},
      {"target_modules", targets}, {"rank_pattern", rank_pattern}, {"alpha_pattern", alpha_pattern},
      {"init_lora_weights", true}, {"layers_to_transform", nullptr}, {"layers_pattern", nullptr}, {"revision", nullptr},
  };
  const std::string text = cfg.dump(2) + "\n";
  LOWBIT_ASSIGN_OR_RETURN(AtomicFile f, AtomicFile::Create((fs::path(dir) / "adapter_config.json").string()));
  LOWBIT_RETURN_IF_ERROR(f.Write(text.data(), text.size()));
  return f.Commit();
}

}  // namespace lowbit::train

#include "lowbit/formats/hf.h"

#include <map>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "lowbit/base/mapped_file.h"

namespace lowbit {
namespace {

using Json = nlohmann::json;

Status GetInt(const Json& j, const char* key, int64_t min, int64_t max, bool required, int64_t* out,
              const std::string& name) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) return Errorf("{}: required field \"{}\" is missing", name, key);
    return OkStatus();
  }
  if (!it->is_number_integer()) return Errorf("{}: field \"{}\" must be an integer, found {}", name, key, it->dump());
  const int64_t v = it->get<int64_t>();
  if (v < min || v > max) return Errorf("{}: field \"{}\" = {} is outside [{}, {}]", name, key, v, min, max);
  *out = v;
  return OkStatus();
}

Status GetDouble(const Json& j, const char* key, double* out, const std::string& name) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return OkStatus();
  if (!it->is_number()) return Errorf("{}: field \"{}\" must be a number, found {}", name, key, it->dump());
  *out = it->get<double>();
  if (!(*out > 0)) return Errorf("{}: field \"{}\" = {} must be positive", name, key, *out);
  return OkStatus();
}

bool IsByteToken(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return false;
  return std::isxdigit(static_cast<unsigned char>(t[3])) && std::isxdigit(static_cast<unsigned char>(t[4]));
}

}  // namespace

Expected<std::string> ReadTextFile(const std::string& path, uint64_t max_bytes) {
  LOWBIT_ASSIGN_OR_RETURN(MappedFile map, MappedFile::Open(path));
  if (map.size() > max_bytes) return Errorf("{}: {} bytes is larger than the {} byte limit", path, map.size(), max_bytes);
  return std::string(reinterpret_cast<const char*>(map.data()), map.size());
}

Expected<HfLlamaConfig> ParseHfConfig(std::string_view json, const std::string& name) {
  Json j = Json::parse(json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Errorf("{}: not a JSON object", name);
  HfLlamaConfig c;
  auto arch = j.find("architectures");
  if (arch != j.end() && arch->is_array() && !arch->empty() && (*arch)[0].is_string()) {
    c.architecture = (*arch)[0].get<std::string>();
  }
  std::string model_type;
  auto mt = j.find("model_type");
  if (mt != j.end() && mt->is_string()) model_type = mt->get<std::string>();
  const bool llama_like = c.architecture == "LlamaForCausalLM" || c.architecture == "MistralForCausalLM" ||
                          model_type == "llama" || model_type == "mistral";
  if (!llama_like) {
    return Errorf("{}: architecture '{}' (model_type '{}') is not supported; lowbit converts Llama-family "
                  "models (LlamaForCausalLM, MistralForCausalLM)", name, c.architecture, model_type);
  }
  constexpr int64_t kBig = int64_t{1} << 24;
  LOWBIT_RETURN_IF_ERROR(GetInt(j, "hidden_size", 1, kBig, true, &c.hidden_size, name));
  LOWBIT_RETURN_IF_ERROR(GetInt(j, "intermediate_size", 1, kBig, true, &c.intermediate_size, name));
  LOWBIT_RETURN_IF_ERROR(GetInt(j, "num_hidden_layers", 1, 4096, true, &c.num_hidden_layers, name));
  LOWBIT_RETURN_IF_ERROR(GetInt(j, "num_attention_heads", 1, 65536, true, &c.num_attention_heads, name));
  c.num_key_value_heads = c.num_attention_heads;
  LOWBIT_RETURN_IF_ERROR(GetInt(j, "num_key_value_heads", 1, 65536, false, &c.num_key_value_heads, name));
  LOWBIT_RETURN_IF_ERROR(GetInt(j, "vocab_size", 1, kBig, true, &c.vocab_size, name));
  c.max_position_embeddings = 2048;
  LOWBIT_RETURN_IF_ERROR(GetInt(j, "max_position_embeddings", 1, int64_t{1} << 32, false, &c.max_position_embeddings, name));
  if (c.hidden_size % c.num_attention_heads != 0) {
    return Errorf("{}: hidden_size {} is not a multiple of num_attention_heads {}", name, c.hidden_size,
                  c.num_attention_heads);
  }
  c.head_dim = c.hidden_size / c.num_attention_heads;
  LOWBIT_RETURN_IF_ERROR(GetInt(j, "head_dim", 1, kBig, false, &c.head_dim, name));
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    return Errorf("{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", name,
                  c.num_attention_heads, c.num_key_value_heads);
  }
  if (c.head_dim % 2 != 0) return Errorf("{}: head_dim {} must be even for RoPE", name, c.head_dim);
  LOWBIT_RETURN_IF_ERROR(GetDouble(j, "rms_norm_eps", &c.rms_norm_eps, name));
  LOWBIT_RETURN_IF_ERROR(GetDouble(j, "rope_theta", &c.rope_theta, name));
  auto rs = j.find("rope_scaling");
  if (rs != j.end() && !rs->is_null()) {
    std::string type;
    if (rs->is_object()) {
      for (const char* k : {"rope_type", "type"}) {
        if (rs->contains(k) && (*rs)[k].is_string()) type = (*rs)[k].get<std::string>();
      }
    }
    if (type != "llama3" && type != "linear") {
      return Errorf("{}: rope_scaling {} is not supported yet (llama3 and linear are)", name, rs->dump());
    }
    c.rope_scaling_type = type;
    auto num = [&](const char* k, double* out) -> Status {
      if (!rs->contains(k)) return OkStatus();
      if (!(*rs)[k].is_number() || !((*rs)[k].get<double>() > 0)) return Errorf("{}: rope_scaling.{} must be a positive number", name, k);
      *out = (*rs)[k].get<double>();
      return OkStatus();
    };
    LOWBIT_RETURN_IF_ERROR(num("factor", &c.rope_factor));
    LOWBIT_RETURN_IF_ERROR(num("low_freq_factor", &c.rope_low_freq_factor));
    LOWBIT_RETURN_IF_ERROR(num("high_freq_factor", &c.rope_high_freq_factor));
    LOWBIT_RETURN_IF_ERROR(num("original_max_position_embeddings", &c.rope_original_context));
    if (type == "llama3" && c.rope_low_freq_factor >= c.rope_high_freq_factor) {
      return Errorf("{}: rope_scaling low_freq_factor {} must be below high_freq_factor {}", name, c.rope_low_freq_factor,
                    c.rope_high_freq_factor);
    }
  }
  auto tie = j.find("tie_word_embeddings");
  if (tie != j.end() && tie->is_boolean()) c.tie_word_embeddings = tie->get<bool>();
  LOWBIT_RETURN_IF_ERROR(GetInt(j, "bos_token_id", 0, kBig, false, &c.bos_token_id, name));
  LOWBIT_RETURN_IF_ERROR(GetInt(j, "eos_token_id", 0, kBig, false, &c.eos_token_id, name));
  auto dt = j.find("torch_dtype");
  if (dt != j.end() && dt->is_string()) c.torch_dtype = dt->get<std::string>();
  return c;
}

Expected<HfLlamaConfig> LoadHfConfig(const std::string& path) {
  LOWBIT_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path));
  return ParseHfConfig(text, path);
}

Expected<Vocab> ParseHfTokenizerJson(std::string_view json, const std::string& name) {
  Json j = Json::parse(json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Errorf("{}: not a JSON object", name);
  auto model = j.find("model");
  if (model == j.end() || !model->is_object()) return Errorf("{}: missing object \"model\"", name);
  auto type = model->find("type");
  if (type == model->end() || *type != "BPE") {
    return Errorf("{}: tokenizer model type {} is not supported (only BPE)",
                  name, type == model->end() ? "(none)" : type->dump());
  }
  auto vocab = model->find("vocab");
  if (vocab == model->end() || !vocab->is_object()) return Errorf("{}: missing object \"model.vocab\"", name);
  std::map<int64_t, std::string> by_id;
  std::map<int64_t, bool> special;  // added tokens: id -> special
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    if (!it.value().is_number_integer()) return Errorf("{}: vocab entry '{}' has a non-integer id", name, it.key());
    const int64_t id = it.value().get<int64_t>();
    if (id < 0 || id >= (int64_t{1} << 24)) return Errorf("{}: vocab entry '{}' has id {} out of range", name, it.key(), id);
    if (!by_id.emplace(id, it.key()).second) return Errorf("{}: id {} is used twice in the vocab", name, id);
  }
  auto added = j.find("added_tokens");
  if (added != j.end() && added->is_array()) {
    for (const Json& a : *added) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") ||
          !a["content"].is_string()) {
        return Errorf("{}: an added_tokens entry lacks an integer \"id\" or string \"content\"", name);
      }
      const int64_t id = a["id"].get<int64_t>();
      if (id < 0 || id >= (int64_t{1} << 24)) return Errorf("{}: added token id {} out of range", name, id);
      by_id[id] = a["content"].get<std::string>();
      special[id] = a.value("special", false);
    }
  }
  if (by_id.empty()) return Errorf("{}: the vocabulary is empty", name);
  std::vector<std::pair<std::string, std::string>> merges;
  auto m = model->find("merges");
  if (m != model->end() && m->is_array()) {
    for (const Json& e : *m) {
      if (e.is_string()) {
        const std::string s = e.get<std::string>();
        const size_t sp = s.find(' ', 1);
        if (sp == std::string::npos) return Errorf("{}: merge \"{}\" is not two pieces", name, s);
        merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
      } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
      } else {
        return Errorf("{}: a merge is neither \"a b\" nor [\"a\", \"b\"]", name);
      }
    }
  }
  const bool byte_fallback = model->value("byte_fallback", false);
  std::string unk_token;
  auto unk = model->find("unk_token");
  if (unk != model->end() && unk->is_string()) unk_token = unk->get<std::string>();

  Vocab v;
  v.model = byte_fallback ? "llama" : "gpt2";
  const int64_t n = by_id.rbegin()->first + 1;
  v.tokens.resize(n);
  v.token_types.assign(n, static_cast<int32_t>(TokenType::kUnused));
  for (int64_t i = 0; i < n; ++i) v.tokens[i] = "[PAD" + std::to_string(i) + "]";
  std::unordered_map<std::string, int64_t> id_of;
  for (const auto& [id, text] : by_id) {
    v.tokens[id] = text;
    id_of[text] = id;
    TokenType t = TokenType::kNormal;
    if (!unk_token.empty() && text == unk_token) t = TokenType::kUnknown;
    else if (special.count(id)) t = special[id] ? TokenType::kControl : TokenType::kUserDefined;
    else if (byte_fallback && IsByteToken(text)) t = TokenType::kByte;
    v.token_types[id] = static_cast<int32_t>(t);
  }
  if (!unk_token.empty() && id_of.count(unk_token)) v.unk_id = id_of[unk_token];
  if (byte_fallback) {
    v.scores.assign(n, 0.0f);
    std::vector<bool> scored(n, false);
    for (size_t r = 0; r < merges.size(); ++r) {
      auto it = id_of.find(merges[r].first + merges[r].second);
      if (it != id_of.end() && !scored[it->second]) {
        v.scores[it->second] = -static_cast<float>(r);
        scored[it->second] = true;
      }
    }
  } else {
    for (const auto& [a, b] : merges) v.merges.push_back(a + " " + b);
  }
  return v;
}

Expected<Vocab> LoadHfTokenizerJson(const std::string& path) {
  LOWBIT_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path));
  return ParseHfTokenizerJson(text, path);
}

}  // namespace lowbit

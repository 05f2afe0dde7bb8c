#include "lowbit/formats/quant_config.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "lowbit/formats/hf.h"

#ifndef LOWBIT_VERSION
#define LOWBIT_VERSION "0.1.0"
#endif

namespace lowbit {

struct CompiledRegex {
  pcre2_code* code = nullptr;
  pcre2_match_context* context = nullptr;
  ~CompiledRegex() {
    pcre2_match_context_free(context);
    pcre2_code_free(code);
  }
};

namespace {

// Ordered: GPTQModel's dynamic rules apply in the order the file lists them.
using Json = nlohmann::ordered_json;
using OrderedJson = nlohmann::ordered_json;

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The object's keys lowercased, with the synonyms AutoGPTQ and GPTQModel accept mapped to one name.
// A key given twice (directly and through a synonym) is an error when the values differ.
Expected<std::map<std::string, Json>> Normalize(const Json& j, const std::string& name) {
  static const std::map<std::string, std::string> kSynonyms = {
      {"w_bit", "bits"}, {"q_group_size", "group_size"}, {"format", "checkpoint_format"}, {"method", "quant_method"}};
  std::map<std::string, Json> out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    std::string key = Lower(it.key());
    auto syn = kSynonyms.find(key);
    if (syn != kSynonyms.end()) key = syn->second;
    auto [pos, inserted] = out.emplace(key, it.value());
    if (!inserted && pos->second != it.value()) {
      return Errorf("{}: \"{}\" is given twice with different values ({} and {})", name, key, pos->second.dump(),
                    it.value().dump());
    }
  }
  return out;
}

const Json* Find(const std::map<std::string, Json>& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() || it->second.is_null() ? nullptr : &it->second;
}

Status GetBool(const std::map<std::string, Json>& m, const std::string& key, bool* out, const std::string& name) {
  const Json* v = Find(m, key);
  if (v == nullptr) return OkStatus();
  if (!v->is_boolean()) return Errorf("{}: \"{}\" must be true or false, found {}", name, key, v->dump());
  *out = v->get<bool>();
  return OkStatus();
}

Status GetString(const std::map<std::string, Json>& m, const std::string& key, std::string* out,
                 const std::string& name) {
  const Json* v = Find(m, key);
  if (v == nullptr) return OkStatus();
  if (!v->is_string()) return Errorf("{}: \"{}\" must be a string, found {}", name, key, v->dump());
  *out = v->get<std::string>();
  return OkStatus();
}

Status CheckBits(const Json& v, const std::string& where, const std::string& name, int* out) {
  if (!v.is_number_integer()) return Errorf("{}: {} must be an integer, found {}", name, where, v.dump());
  const int64_t b = v.get<int64_t>();
  if (b != 2 && b != 3 && b != 4 && b != 8) {
    return Errorf("{}: {} = {} is not a GPTQ/AWQ layout lowbit reads (2, 3, 4 or 8 bits)", name, where, b);
  }
  *out = static_cast<int>(b);
  return OkStatus();
}

Status CheckGroupSize(const Json& v, const std::string& where, const std::string& name, int64_t* out) {
  if (!v.is_number_integer()) return Errorf("{}: {} must be an integer, found {}", name, where, v.dump());
  const int64_t g = v.get<int64_t>();
  if (g != -1 && (g <= 0 || g > (int64_t{1} << 24))) {
    return Errorf("{}: {} = {} must be -1 (per output channel) or a positive column count", name, where, g);
  }
  *out = g;
  return OkStatus();
}

Status ParsePackDtype(const std::map<std::string, Json>& m, int* bits, const std::string& name) {
  const Json* v = Find(m, "pack_dtype");
  if (v == nullptr) return OkStatus();
  if (!v->is_string()) return Errorf("{}: \"pack_dtype\" must be a string, found {}", name, v->dump());
  std::string s = Lower(v->get<std::string>());
  if (s.starts_with("torch.")) s = s.substr(6);
  static const std::map<std::string, int> kWidths = {{"int8", 8}, {"int16", 16}, {"int32", 32}, {"int64", 64}};
  auto it = kWidths.find(s);
  if (it == kWidths.end()) {
    return Errorf("{}: \"pack_dtype\" = \"{}\" is not one of int8, int16, int32, int64", name, v->get<std::string>());
  }
  *bits = it->second;
  return OkStatus();
}

// quant_method and the checkpoint layout.
Status ParseMethodAndFormat(const std::map<std::string, Json>& m, QuantConfig* c, const std::string& name) {
  std::string method, format, version, backend;
  LOWBIT_RETURN_IF_ERROR(GetString(m, "quant_method", &method, name));
  LOWBIT_RETURN_IF_ERROR(GetString(m, "checkpoint_format", &format, name));
  LOWBIT_RETURN_IF_ERROR(GetString(m, "version", &version, name));
  LOWBIT_RETURN_IF_ERROR(GetString(m, "backend", &backend, name));
  method = Lower(method);
  format = Lower(format);
  version = Lower(version);
  bool marlin = false;
  LOWBIT_RETURN_IF_ERROR(GetBool(m, "is_marlin_format", &marlin, name));
  if (method.empty()) {  // AutoAWQ's quant_config.json has no quant_method
    method = (Find(m, "version") || Find(m, "zero_point")) && !Find(m, "desc_act") ? "awq" : "gptq";
  }
  if (method == "marlin" || marlin || format == "marlin") {
    return Errorf("{}: checkpoint is in the Marlin layout (quant_method/checkpoint_format \"marlin\"), which "
                  "repacks the weights into GPU tiles; lowbit reads the plain \"gptq\" / \"gptq_v2\" layouts", name);
  }
  if (method == "gptq" || method == "auto_round" || method == "gptqmodel") {
    if (format == "gemm") {
      method = "awq";  // AutoGPTQ's own way of naming an AWQ GEMM checkpoint
    } else if (format.empty() || format == "gptq") {
      c->method = QuantMethod::kGptq;
      c->format = CheckpointFormat::kGptq;
      return OkStatus();
    } else if (format == "gptq_v2") {
      c->method = QuantMethod::kGptq;
      c->format = CheckpointFormat::kGptqV2;
      return OkStatus();
    } else {
      return Errorf("{}: checkpoint_format \"{}\" is not a layout lowbit reads (\"gptq\" = v1, \"gptq_v2\"); "
                    "bitblas, ipex and qqq checkpoints are repacked for their own kernels", name, format);
    }
  }
  if (method != "awq") {
    return Errorf("{}: quant_method \"{}\" is not GPTQ or AWQ", name, method);
  }
  c->method = QuantMethod::kAwq;
  c->format = CheckpointFormat::kAwqGemm;
  if (version.empty() && (format == "gemm" || format.empty())) version = "gemm";
  if (version.empty()) version = format;
  if (version != "gemm") {
    return Errorf("{}: AWQ version \"{}\" is not the GEMM layout; lowbit reads AutoAWQ's GEMM checkpoints "
                  "(GEMV, GEMV_fast, Marlin, exllama and ipex store or repack the weights differently)",
                  name, version);
  }
  if (Lower(backend) == "llm-awq") {
    return Errorf("{}: backend \"llm-awq\" marks an llm-awq (TinyChat) checkpoint, whose int16 interleaved "
                  "layout differs from AutoAWQ's GEMM; lowbit reads AutoAWQ GEMM", name);
  }
  return OkStatus();
}

Status ParseMeta(const std::map<std::string, Json>& m, QuantConfig* c, const std::string& name) {
  const Json* meta = Find(m, "meta");
  if (meta == nullptr) return OkStatus();
  if (!meta->is_object()) return Errorf("{}: \"meta\" must be an object, found {}", name, meta->dump());
  c->meta_json = meta->dump();
  auto q = meta->find("quantizer");
  if (q != meta->end() && !q->is_null()) {
    if (q->is_string()) {
      c->quantizer.push_back(q->get<std::string>());
    } else if (q->is_array()) {
      for (const Json& e : *q) {
        if (!e.is_string()) return Errorf("{}: \"meta.quantizer\" entries must be strings, found {}", name, e.dump());
        c->quantizer.push_back(e.get<std::string>());
      }
    } else {
      return Errorf("{}: \"meta.quantizer\" must be a string or a list of strings", name);
    }
  }
  auto damp = meta->find("damp_percent");
  if (damp != meta->end() && damp->is_number() && !Find(m, "damp_percent")) c->damp_percent = damp->get<double>();
  return OkStatus();
}

Status ParseDynamic(const std::map<std::string, Json>& m, QuantConfig* c, const std::string& name) {
  const Json* d = Find(m, "dynamic");
  if (d == nullptr) return OkStatus();
  if (!d->is_object()) return Errorf("{}: \"dynamic\" must be an object of pattern -> overrides", name);
  std::vector<DynamicRule> negative, positive;  // GPTQModel tries the "-:" rules first
  for (auto it = d->begin(); it != d->end(); ++it) {
    LOWBIT_ASSIGN_OR_RETURN(DynamicRule r, MakeDynamicRule(it.key(), it.value().dump(), name));
    (r.skip ? negative : positive).push_back(std::move(r));
  }
  c->dynamic = std::move(negative);
  for (DynamicRule& r : positive) c->dynamic.push_back(std::move(r));
  return OkStatus();
}

Status ParseModulesToNotConvert(const std::map<std::string, Json>& m, QuantConfig* c, const std::string& name) {
  const Json* v = Find(m, "modules_to_not_convert");
  if (v == nullptr) return OkStatus();
  if (!v->is_array()) return Errorf("{}: \"modules_to_not_convert\" must be a list of names", name);
  for (const Json& e : *v) {
    if (!e.is_string() || e.get<std::string>().empty()) {
      return Errorf("{}: \"modules_to_not_convert\" entries must be non-empty strings, found {}", name, e.dump());
    }
    c->modules_to_not_convert.push_back(e.get<std::string>());
  }
  return OkStatus();
}

Status ParseObject(const Json& j, QuantConfig* c, const std::string& name) {
  LOWBIT_ASSIGN_OR_RETURN(auto m, Normalize(j, name));
  LOWBIT_RETURN_IF_ERROR(ParseMethodAndFormat(m, c, name));
  const bool gptq = c->method == QuantMethod::kGptq;
  if (const Json* v = Find(m, "bits")) {
    LOWBIT_RETURN_IF_ERROR(CheckBits(*v, "\"bits\"", name, &c->bits));
  } else if (gptq) {
    return Errorf("{}: required field \"bits\" is missing", name);
  }
  if (const Json* v = Find(m, "group_size")) {
    LOWBIT_RETURN_IF_ERROR(CheckGroupSize(*v, "\"group_size\"", name, &c->group_size));
  } else if (gptq) {
    return Errorf("{}: required field \"group_size\" is missing", name);
  }
  c->desc_act = gptq;  // AutoGPTQ's default: an absent desc_act accepts any valid g_idx
  LOWBIT_RETURN_IF_ERROR(GetBool(m, "desc_act", &c->desc_act, name));
  LOWBIT_RETURN_IF_ERROR(GetBool(m, "sym", &c->sym, name));
  LOWBIT_RETURN_IF_ERROR(GetBool(m, "static_groups", &c->static_groups, name));
  LOWBIT_RETURN_IF_ERROR(GetBool(m, "true_sequential", &c->true_sequential, name));
  LOWBIT_RETURN_IF_ERROR(GetBool(m, "lm_head", &c->lm_head, name));
  LOWBIT_RETURN_IF_ERROR(GetBool(m, "zero_point", &c->zero_point, name));
  LOWBIT_RETURN_IF_ERROR(GetString(m, "model_file_base_name", &c->model_file_base_name, name));
  if (const Json* v = Find(m, "damp_percent")) {
    if (!v->is_number()) return Errorf("{}: \"damp_percent\" must be a number, found {}", name, v->dump());
    c->damp_percent = v->get<double>();
  }
  LOWBIT_RETURN_IF_ERROR(ParsePackDtype(m, &c->pack_bits, name));
  LOWBIT_RETURN_IF_ERROR(ParseMeta(m, c, name));
  LOWBIT_RETURN_IF_ERROR(ParseDynamic(m, c, name));
  LOWBIT_RETURN_IF_ERROR(ParseModulesToNotConvert(m, c, name));
  if (gptq) {
    if (c->bits == 3 && c->pack_bits != 32) {
      return Errorf("{}: 3-bit GPTQ packs into int32 words only, but pack_dtype is int{}", name, c->pack_bits);
    }
    if (c->bits > c->pack_bits) return Errorf("{}: {}-bit values do not fit int{} words", name, c->bits, c->pack_bits);
    for (const std::string& q : c->quantizer) {
      const std::string tool = Lower(q.substr(0, q.find(':')));
      if (tool == "gptqmodel" || tool == "lowbit") c->v1_zeros = V1Zeros::kGptqModel;
    }
  } else {
    if (c->bits != 4) {
      return Errorf("{}: AWQ bits = {}: AutoAWQ's GEMM layout holds 4-bit values only", name, c->bits);
    }
    if (!c->zero_point) {
      return Errorf("{}: AWQ zero_point = false: AutoAWQ's GEMM layout always stores zero points (its "
                    "quantizer asserts zero_point); this checkpoint is not one lowbit reads", name);
    }
    if (c->pack_bits != 32) {
      return Errorf("{}: AWQ GEMM packs int32 words, but pack_dtype is int{}", name, c->pack_bits);
    }
    c->desc_act = false;
    c->sym = false;
  }
  return OkStatus();
}

OrderedJson MetaWithQuantizer(const QuantConfig& c) {
  OrderedJson meta = OrderedJson::object();
  if (!c.meta_json.empty()) {
    OrderedJson parsed = OrderedJson::parse(c.meta_json, nullptr, false);
    if (parsed.is_object()) meta = parsed;
  }
  OrderedJson q = OrderedJson::array();
  if (c.quantizer.empty()) {
    q.push_back(std::string("lowbit:") + LOWBIT_VERSION);
  } else {
    for (const std::string& s : c.quantizer) q.push_back(s);
  }
  meta["quantizer"] = q;
  return meta;
}

OrderedJson GptqDict(const QuantConfig& c) {
  OrderedJson j = OrderedJson::object();
  j["bits"] = c.bits;
  j["group_size"] = c.group_size;
  j["damp_percent"] = c.damp_percent;
  j["desc_act"] = c.desc_act;
  j["static_groups"] = c.static_groups;
  j["sym"] = c.sym;
  j["true_sequential"] = c.true_sequential;
  j["model_name_or_path"] = nullptr;
  if (c.model_file_base_name.empty()) j["model_file_base_name"] = nullptr;
  else j["model_file_base_name"] = c.model_file_base_name;
  j["quant_method"] = "gptq";
  j["checkpoint_format"] = std::string(CheckpointFormatName(c.format));
  j["pack_dtype"] = "int" + std::to_string(c.pack_bits);
  j["lm_head"] = c.lm_head;
  if (!c.dynamic.empty()) {
    OrderedJson d = OrderedJson::object();
    for (const DynamicRule& r : c.dynamic) d[r.pattern] = OrderedJson::parse(r.overrides_json, nullptr, false);
    j["dynamic"] = d;
  }
  if (!c.modules_to_not_convert.empty()) j["modules_to_not_convert"] = c.modules_to_not_convert;
  j["meta"] = MetaWithQuantizer(c);
  return j;
}

OrderedJson AwqTransformersDict(const QuantConfig& c) {
  OrderedJson j = OrderedJson::object();
  j["quant_method"] = "awq";
  j["zero_point"] = c.zero_point;
  j["group_size"] = c.group_size;
  j["bits"] = c.bits;
  j["version"] = "gemm";
  if (c.modules_to_not_convert.empty()) j["modules_to_not_convert"] = nullptr;
  else j["modules_to_not_convert"] = c.modules_to_not_convert;
  return j;
}

bool Matches(const CompiledRegex& re, std::string_view s, Status* error) {
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(re.code, nullptr);
  const int rc = pcre2_match(re.code, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), 0, PCRE2_ANCHORED, md,
                             re.context);
  pcre2_match_data_free(md);
  if (rc >= 0) return true;
  if (rc != PCRE2_ERROR_NOMATCH) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(rc, msg, sizeof(msg));
    *error = Errorf("matching module '{}': {}", s, reinterpret_cast<char*>(msg));
  }
  return false;
}

// The layout fields of config.json's quantization_config `a` and of `file`'s config `b` agree.
Status CheckAgreement(const QuantConfig& a, const QuantConfig& b, const std::string& folder, const char* file) {
  auto differ = [&](const char* field, const std::string& x, const std::string& y) {
    return Errorf("{}: \"{}\" is {} in config.json's quantization_config but {} in {}; the folder "
                  "disagrees with itself", folder, field, x, y, file);
  };
  auto method = [](QuantMethod m) { return std::string(m == QuantMethod::kGptq ? "gptq" : "awq"); };
  auto format = [](CheckpointFormat f) { return std::string(CheckpointFormatName(f)); };
  auto flag = [](bool v) { return std::string(v ? "true" : "false"); };
  if (a.method != b.method) return differ("quant_method", method(a.method), method(b.method));
  if (a.format != b.format) return differ("checkpoint_format", format(a.format), format(b.format));
  if (a.bits != b.bits) return differ("bits", std::to_string(a.bits), std::to_string(b.bits));
  if (a.group_size != b.group_size) {
    return differ("group_size", std::to_string(a.group_size), std::to_string(b.group_size));
  }
  if (a.sym != b.sym) return differ("sym", flag(a.sym), flag(b.sym));
  if (a.pack_bits != b.pack_bits) {
    return differ("pack_dtype", "int" + std::to_string(a.pack_bits), "int" + std::to_string(b.pack_bits));
  }
  return OkStatus();
}

}  // namespace

std::string_view CheckpointFormatName(CheckpointFormat f) {
  switch (f) {
    case CheckpointFormat::kGptq: return "gptq";
    case CheckpointFormat::kGptqV2: return "gptq_v2";
    case CheckpointFormat::kAwqGemm: return "gemm";
  }
  return "?";
}

Expected<DynamicRule> MakeDynamicRule(const std::string& pattern, std::string_view overrides_json,
                                      const std::string& name) {
  DynamicRule r;
  r.pattern = pattern;
  const std::string where = fmt::format("\"dynamic\".\"{}\"", pattern);
  Json o = Json::parse(overrides_json, nullptr, false);
  if (o.is_discarded() || !(o.is_object() || o.is_null())) {
    return Errorf("{}: {} must map to an object of overrides", name, where);
  }
  if (o.is_null()) o = Json::object();
  r.overrides_json = o.dump();
  std::string body = pattern;
  if (body.starts_with("-:")) {
    r.skip = true;
    body = body.substr(2);
  } else if (body.starts_with("+:")) {
    body = body.substr(2);
  }
  for (auto it = o.begin(); it != o.end(); ++it) {
    const std::string key = Lower(it.key());
    const std::string field = where + ".\"" + key + "\"";
    if (key == "bits" || key == "w_bit") {
      int b = 0;
      LOWBIT_RETURN_IF_ERROR(CheckBits(it.value(), field, name, &b));
      r.bits = b;
    } else if (key == "group_size" || key == "q_group_size") {
      int64_t g = 0;
      LOWBIT_RETURN_IF_ERROR(CheckGroupSize(it.value(), field, name, &g));
      r.group_size = g;
    } else if (key == "sym" || key == "desc_act") {
      if (!it.value().is_boolean()) return Errorf("{}: {} must be true or false", name, field);
      (key == "sym" ? r.sym : r.desc_act) = it.value().get<bool>();
    } else if (key == "pack_dtype" || key == "format" || key == "checkpoint_format" || key == "quant_method" ||
               key == "method" || key == "zero_point") {
      return Errorf("{}: {} overrides the packing or format per module, which lowbit cannot honor; "
                    "only bits, group_size, sym and desc_act may differ between modules", name, field);
    }  // other keys steer the quantizer only (damp_percent, mse, adapter, ...)
  }
  int err = 0;
  PCRE2_SIZE offset = 0;
  auto re = std::make_shared<CompiledRegex>();
  re->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(body.data()), body.size(), PCRE2_UTF | PCRE2_MATCH_INVALID_UTF,
                           &err, &offset, nullptr);
  if (re->code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    return Errorf("{}: {} is not a regular expression lowbit can compile (at {}: {})", name, where, offset,
                  reinterpret_cast<char*>(msg));
  }
  re->context = pcre2_match_context_create(nullptr);
  pcre2_set_match_limit(re->context, 1000000);
  pcre2_set_depth_limit(re->context, 10000);
  r.regex = std::move(re);
  return r;
}

Expected<std::optional<ModuleQuant>> QuantConfig::ForModule(std::string_view module) const {
  for (const std::string& m : modules_to_not_convert) {
    if (module.find(m) != std::string_view::npos) return std::optional<ModuleQuant>();
  }
  const bool is_lm_head = module == "lm_head" || module.ends_with(".lm_head");
  if (is_lm_head && !lm_head) return std::optional<ModuleQuant>();
  ModuleQuant q = Base();
  for (const DynamicRule& r : dynamic) {
    Status error;
    const bool hit = r.regex != nullptr && Matches(*r.regex, module, &error);
    if (!error.ok()) return error;
    if (!hit) continue;
    if (r.skip) return std::optional<ModuleQuant>();
    if (r.bits) q.bits = *r.bits;
    if (r.group_size) q.group_size = *r.group_size;
    if (r.sym) q.sym = *r.sym;
    if (r.desc_act) q.desc_act = *r.desc_act;
    break;  // the first positive match decides, as GPTQModel's dynamic_get does
  }
  return std::optional<ModuleQuant>(q);
}

Expected<QuantConfig> ParseQuantConfig(std::string_view json, const std::string& name) {
  Json j = Json::parse(json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Errorf("{}: not a JSON object", name);
  auto qc = j.find("quantization_config");
  if (qc != j.end()) {
    if (!qc->is_object()) return Errorf("{}: \"quantization_config\" must be an object", name);
    QuantConfig c;
    LOWBIT_RETURN_IF_ERROR(ParseObject(*qc, &c, name + ": quantization_config"));
    return c;
  }
  QuantConfig c;
  LOWBIT_RETURN_IF_ERROR(ParseObject(j, &c, name));
  return c;
}

Expected<QuantConfig> LoadQuantConfig(const std::string& folder) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path dir(folder);
  std::optional<QuantConfig> from_config;
  const fs::path config = dir / "config.json";
  if (fs::exists(config, ec)) {
    LOWBIT_ASSIGN_OR_RETURN(std::string text, ReadTextFile(config.string()));
    Json j = Json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return Errorf("{}: not a JSON object", config.string());
    if (j.contains("quantization_config") && !j["quantization_config"].is_null()) {
      LOWBIT_ASSIGN_OR_RETURN(QuantConfig c, ParseQuantConfig(text, config.string()));
      from_config = std::move(c);
    }
  }
  for (const char* file : {"quantize_config.json", "quant_config.json"}) {
    const fs::path p = dir / file;
    if (!fs::exists(p, ec)) continue;
    LOWBIT_ASSIGN_OR_RETURN(std::string text, ReadTextFile(p.string()));
    LOWBIT_ASSIGN_OR_RETURN(QuantConfig c, ParseQuantConfig(text, p.string()));
    if (!from_config) return c;
    LOWBIT_RETURN_IF_ERROR(CheckAgreement(*from_config, c, folder, file));
    return *from_config;
  }
  if (from_config) return *from_config;
  return Errorf("{}: no quantization config (config.json has no \"quantization_config\", and there is no "
                "quantize_config.json or quant_config.json): not a GPTQ or AWQ checkpoint", folder);
}

Status CheckWritableConfig(const QuantConfig& c) {
  if (c.method == QuantMethod::kAwq) {
    if (c.format != CheckpointFormat::kAwqGemm) return Status::Error("AWQ is written in the GEMM layout only");
    if (c.bits != 4) return Errorf("AWQ GEMM holds 4-bit values only, not {}", c.bits);
    if (!c.zero_point) return Status::Error("AWQ GEMM always stores zero points (zero_point must be true)");
    if (c.pack_bits != 32) return Status::Error("AWQ GEMM packs int32 words");
    if (c.group_size != -1 && c.group_size <= 0) return Errorf("group_size {} must be -1 or positive", c.group_size);
    return OkStatus();
  }
  if (c.format == CheckpointFormat::kAwqGemm) {
    return Status::Error("GPTQ is written as \"gptq\" (v1) or \"gptq_v2\"");
  }
  if (c.bits != 2 && c.bits != 3 && c.bits != 4 && c.bits != 8) {
    return Errorf("GPTQ bits {} is not 2, 3, 4 or 8", c.bits);
  }
  if (c.group_size != -1 && c.group_size <= 0) return Errorf("group_size {} must be -1 or positive", c.group_size);
  if (!(c.pack_bits == 8 || c.pack_bits == 16 || c.pack_bits == 32 || c.pack_bits == 64)) {
    return Errorf("pack_dtype int{} is not int8, int16, int32 or int64", c.pack_bits);
  }
  if (c.bits == 3 && c.pack_bits != 32) return Status::Error("3-bit GPTQ packs into int32 words only");
  if (c.bits > c.pack_bits) return Errorf("{}-bit values do not fit int{} words", c.bits, c.pack_bits);
  if (!(c.damp_percent > 0 && c.damp_percent < 1)) {
    return Errorf("damp_percent {} must lie in (0, 1): transformers' GPTQConfig rejects anything else", c.damp_percent);
  }
  return OkStatus();
}

std::string GptqQuantizeConfigJson(const QuantConfig& c) { return GptqDict(c).dump(2) + "\n"; }

std::string AwqQuantConfigJson(const QuantConfig& c) {
  OrderedJson j = OrderedJson::object();
  j["zero_point"] = c.zero_point;
  j["q_group_size"] = c.group_size;
  j["w_bit"] = c.bits;
  j["version"] = "GEMM";
  if (c.modules_to_not_convert.empty()) j["modules_to_not_convert"] = nullptr;
  else j["modules_to_not_convert"] = c.modules_to_not_convert;
  return j.dump(4) + "\n";
}

std::string QuantizationConfigJson(const QuantConfig& c) {
  return (c.method == QuantMethod::kAwq ? AwqTransformersDict(c) : GptqDict(c)).dump(2);
}

Expected<std::string> WithQuantizationConfig(std::string_view config_json, const QuantConfig& c,
                                             const std::string& name) {
  OrderedJson j = OrderedJson::parse(config_json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Errorf("{}: not a JSON object", name);
  j["quantization_config"] = c.method == QuantMethod::kAwq ? AwqTransformersDict(c) : GptqDict(c);
  return j.dump(2) + "\n";
}

}  // namespace lowbit

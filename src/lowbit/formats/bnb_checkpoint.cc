#include "lowbit/formats/bnb_checkpoint.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "lowbit/formats/quant_tensors.h"

namespace lowbit {
namespace {

using nlohmann::json;
using OrderedJson = nlohmann::ordered_json;
using namespace quant_detail;

// Limits that keep a hostile quant state from implying absurd sizes (a 2^40-element weight is 512 GiB
// packed; real ones are far below).
constexpr int64_t kMaxDim = int64_t{1} << 31;
constexpr int64_t kMaxElements = int64_t{1} << 40;

bool ValidBlockSize(int64_t b) { return b >= 32 && b <= 4096 && (b & (b - 1)) == 0; }

Expected<Bnb4Type> ParseQuantType(const json& v, const std::string& where, const char* field) {
  if (!v.is_string()) return Errorf("{}: field '{}' must be a string (\"nf4\" or \"fp4\")", where, field);
  const auto s = v.get<std::string>();
  if (s == "nf4") return Bnb4Type::kNf4;
  if (s == "fp4") return Bnb4Type::kFp4;
  return Errorf("{}: field '{}' is \"{}\"; lowbit reads bitsandbytes' \"nf4\" and \"fp4\"", where, field, s);
}

Expected<int64_t> ParseBlockSize(const json& o, const std::string& where, const char* field) {
  if (!o.contains(field)) return Errorf("{}: field '{}' is missing", where, field);
  const json& v = o[field];
  if (!v.is_number_integer()) return Errorf("{}: field '{}' must be an integer", where, field);
  const auto b = v.get<int64_t>();
  if (!ValidBlockSize(b)) return Errorf("{}: field '{}' is {}; expected a power of two from 32 to 4096", where, field, b);
  return b;
}

Expected<std::string> ParseDtypeName(const json& o, const std::string& where, const char* field) {
  if (!o.contains(field)) return Errorf("{}: field '{}' is missing", where, field);
  if (!o[field].is_string()) return Errorf("{}: field '{}' must be a string", where, field);
  auto s = o[field].get<std::string>();
  if (s != "float16" && s != "bfloat16" && s != "float32")
    return Errorf("{}: field '{}' is \"{}\"; expected float16, bfloat16 or float32", where, field, s);
  return s;
}

Status CheckLevels(const StTensor& t, std::span<const float> want, const char* what) {
  for (size_t i = 0; i < want.size(); ++i) {
    float v;
    std::memcpy(&v, t.data.data() + 4 * i, 4);
    if (!(v == want[i])) {
      return Errorf("{}: entry {} is {}, not {} of bitsandbytes' {} code book (lowbit runs the standard code books only)",
                    t.name, i, v, want[i], what);
    }
  }
  return OkStatus();
}

Expected<std::vector<float>> FiniteFloats(const StTensor& t) {
  std::vector<float> v(t.n_elements());
  if (!v.empty()) std::memcpy(v.data(), t.data.data(), 4 * v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i])) return Errorf("{}: value [{}] is {}", t.name, i, v[i]);
  }
  return v;
}

}  // namespace

bool DeclaresBnbQuantization(std::string_view config_json) {
  const json j = json::parse(config_json, nullptr, false);
  if (!j.is_object() || !j.contains("quantization_config") || !j["quantization_config"].is_object()) return false;
  const json& q = j["quantization_config"];
  if (q.contains("quant_method")) return q["quant_method"].is_string() && q["quant_method"].get<std::string>() == "bitsandbytes";
  auto truthy = [&](const char* k) { return q.contains(k) && q[k].is_boolean() && q[k].get<bool>(); };
  return truthy("load_in_4bit") || truthy("load_in_8bit");
}

Expected<BnbConfig> ParseBnbConfig(std::string_view text, const std::string& name) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Errorf("{}: not a JSON object", name);
  if (j.contains("quantization_config")) j = j["quantization_config"];
  if (!j.is_object()) return Errorf("{}: quantization_config is not an object", name);
  const std::string where = name + ": quantization_config";
  BnbConfig c;
  auto get_bool = [&](const char* k, bool* out) -> Status {
    if (!j.contains(k) || j[k].is_null()) return OkStatus();
    if (!j[k].is_boolean()) return Errorf("{}: field '{}' must be true or false", where, k);
    *out = j[k].get<bool>();
    return OkStatus();
  };
  LOWBIT_RETURN_IF_ERROR(get_bool("load_in_4bit", &c.load_in_4bit));
  LOWBIT_RETURN_IF_ERROR(get_bool("load_in_8bit", &c.load_in_8bit));
  LOWBIT_RETURN_IF_ERROR(get_bool("bnb_4bit_use_double_quant", &c.double_quant));
  LOWBIT_RETURN_IF_ERROR(get_bool("llm_int8_has_fp16_weight", &c.has_fp16_weight));
  if (c.load_in_4bit == c.load_in_8bit)
    return Errorf("{}: exactly one of load_in_4bit and load_in_8bit must be true", where);
  if (j.contains("quant_method") && !(j["quant_method"].is_string() && j["quant_method"].get<std::string>() == "bitsandbytes"))
    return Errorf("{}: field 'quant_method' must be \"bitsandbytes\"", where);
  if (j.contains("bnb_4bit_quant_type")) {
    LOWBIT_ASSIGN_OR_RETURN(c.quant_type, ParseQuantType(j["bnb_4bit_quant_type"], where, "bnb_4bit_quant_type"));
  }
  if (j.contains("bnb_4bit_compute_dtype") && !j["bnb_4bit_compute_dtype"].is_null()) {
    LOWBIT_ASSIGN_OR_RETURN(c.compute_dtype, ParseDtypeName(j, where, "bnb_4bit_compute_dtype"));
  }
  if (j.contains("bnb_4bit_quant_storage") && !j["bnb_4bit_quant_storage"].is_null()) {
    if (!j["bnb_4bit_quant_storage"].is_string()) return Errorf("{}: field 'bnb_4bit_quant_storage' must be a string", where);
    c.quant_storage = j["bnb_4bit_quant_storage"].get<std::string>();
    if (c.load_in_4bit && c.quant_storage != "uint8")
      return Errorf("{}: field 'bnb_4bit_quant_storage' is \"{}\"; lowbit reads uint8 storage only", where, c.quant_storage);
  }
  if (j.contains("llm_int8_threshold") && !j["llm_int8_threshold"].is_null()) {
    if (!j["llm_int8_threshold"].is_number()) return Errorf("{}: field 'llm_int8_threshold' must be a number", where);
    c.int8_threshold = j["llm_int8_threshold"].get<double>();
    if (!std::isfinite(c.int8_threshold) || c.int8_threshold < 0)
      return Errorf("{}: field 'llm_int8_threshold' is {}; expected a finite value >= 0", where, c.int8_threshold);
  }
  if (j.contains("llm_int8_skip_modules") && !j["llm_int8_skip_modules"].is_null()) {
    const json& s = j["llm_int8_skip_modules"];
    if (!s.is_array()) return Errorf("{}: field 'llm_int8_skip_modules' must be a list of names", where);
    for (const json& m : s) {
      if (!m.is_string()) return Errorf("{}: field 'llm_int8_skip_modules' must be a list of names", where);
      c.skip_modules.push_back(m.get<std::string>());
    }
  }
  if (c.load_in_8bit && c.has_fp16_weight)
    return Errorf("{}: llm_int8_has_fp16_weight is true: the checkpoint holds float weights, not int8 ones", where);
  return c;
}

std::string BnbQuantizationConfigJson(const BnbConfig& c) {
  OrderedJson j;
  j["_load_in_4bit"] = c.load_in_4bit;
  j["_load_in_8bit"] = c.load_in_8bit;
  j["bnb_4bit_compute_dtype"] = c.compute_dtype;
  j["bnb_4bit_quant_storage"] = c.quant_storage;
  j["bnb_4bit_quant_type"] = std::string(Bnb4TypeName(c.quant_type));
  j["bnb_4bit_use_double_quant"] = c.double_quant;
  j["llm_int8_enable_fp32_cpu_offload"] = false;
  j["llm_int8_has_fp16_weight"] = c.has_fp16_weight;
  j["llm_int8_skip_modules"] = c.skip_modules.empty() ? OrderedJson(nullptr) : OrderedJson(c.skip_modules);
  j["llm_int8_threshold"] = c.int8_threshold;
  j["load_in_4bit"] = c.load_in_4bit;
  j["load_in_8bit"] = c.load_in_8bit;
  j["quant_method"] = "bitsandbytes";
  return j.dump(2);
}

Expected<std::string> WithBnbQuantizationConfig(std::string_view config_json, const BnbConfig& c, const std::string& name) {
  OrderedJson j = OrderedJson::parse(config_json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Errorf("{}: not a JSON object", name);
  j["quantization_config"] = OrderedJson::parse(BnbQuantizationConfigJson(c));
  return j.dump(2) + "\n";
}

Expected<Bnb4State> ParseBnb4State(std::string_view text, const std::string& where) {
  const json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Errorf("{}: the quant state is not a JSON object", where);
  Bnb4State s;
  if (!j.contains("quant_type")) return Errorf("{}: field 'quant_type' is missing", where);
  LOWBIT_ASSIGN_OR_RETURN(s.type, ParseQuantType(j["quant_type"], where, "quant_type"));
  LOWBIT_ASSIGN_OR_RETURN(s.blocksize, ParseBlockSize(j, where, "blocksize"));
  LOWBIT_ASSIGN_OR_RETURN(s.dtype, ParseDtypeName(j, where, "dtype"));
  if (!j.contains("shape")) return Errorf("{}: field 'shape' is missing", where);
  const json& sh = j["shape"];
  if (!sh.is_array() || sh.empty() || sh.size() > 4) return Errorf("{}: field 'shape' must be a list of 1 to 4 sizes", where);
  int64_t n = 1;
  for (const json& d : sh) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0 || d.get<int64_t>() >= kMaxDim)
      return Errorf("{}: field 'shape' holds {}; sizes must be integers from 0 to 2^31", where, d.dump());
    s.shape.push_back(d.get<int64_t>());
    n *= s.shape.back();
    if (n > kMaxElements) return Errorf("{}: field 'shape' implies more than 2^40 elements", where);
  }
  const bool any_nested = j.contains("nested_blocksize") || j.contains("nested_dtype") || j.contains("nested_offset");
  if (any_nested) {
    s.nested = true;
    LOWBIT_ASSIGN_OR_RETURN(s.nested_blocksize, ParseBlockSize(j, where, "nested_blocksize"));
    LOWBIT_ASSIGN_OR_RETURN(s.nested_dtype, ParseDtypeName(j, where, "nested_dtype"));
    if (s.nested_dtype != "float32") return Errorf("{}: field 'nested_dtype' is \"{}\"; expected float32", where, s.nested_dtype);
    if (!j.contains("nested_offset")) return Errorf("{}: field 'nested_offset' is missing", where);
    if (!j["nested_offset"].is_number()) return Errorf("{}: field 'nested_offset' must be a number", where);
    const double off = j["nested_offset"].get<double>();
    s.nested_offset = static_cast<float>(off);
    if (!std::isfinite(s.nested_offset)) return Errorf("{}: field 'nested_offset' is {}", where, off);
  }
  return s;
}

std::string Bnb4StateJson(const Bnb4State& s) {
  // Python's json.dumps: ", " and ": ", floats in repr (shortest round trip of the double).
  std::string out = fmt::format("{{\"quant_type\": \"{}\", \"blocksize\": {}, \"dtype\": \"{}\", \"shape\": [{}]",
                                Bnb4TypeName(s.type), s.blocksize, s.dtype, fmt::join(s.shape, ", "));
  if (s.nested) {
    std::string off = fmt::format("{}", static_cast<double>(s.nested_offset));
    if (off.find_first_of(".en") == std::string::npos) off += ".0";  // Python prints 2.0, fmt 2
    out += fmt::format(", \"nested_blocksize\": {}, \"nested_dtype\": \"{}\", \"nested_offset\": {}", s.nested_blocksize,
                       s.nested_dtype, off);
  }
  return out + "}";
}

std::string Bnb4StateTensorName(const std::string& prefix, Bnb4Type t) {
  return prefix + ".weight.quant_state.bitsandbytes__" + std::string(Bnb4TypeName(t));
}

bool HasBnb4Linear(const TensorSet& ts, const std::string& prefix) {
  return ts.Find(Bnb4StateTensorName(prefix, Bnb4Type::kNf4)) != nullptr ||
         ts.Find(Bnb4StateTensorName(prefix, Bnb4Type::kFp4)) != nullptr;
}

bool HasBnb8Linear(const TensorSet& ts, const std::string& prefix) { return ts.Find(prefix + ".SCB") != nullptr; }

Expected<Bnb4State> ReadBnb4State(const TensorSet& ts, const std::string& prefix) {
  const StTensor* st_nf4 = ts.Find(Bnb4StateTensorName(prefix, Bnb4Type::kNf4));
  const StTensor* st_fp4 = ts.Find(Bnb4StateTensorName(prefix, Bnb4Type::kFp4));
  if (st_nf4 != nullptr && st_fp4 != nullptr)
    return Errorf("{}.weight: has both an nf4 and an fp4 quant state tensor", prefix);
  const StTensor* st = st_nf4 != nullptr ? st_nf4 : st_fp4;
  if (st == nullptr) return Errorf("{}: tensor is missing", Bnb4StateTensorName(prefix, Bnb4Type::kNf4));
  LOWBIT_RETURN_IF_ERROR(ExpectDtype(*st, {StDtype::kU8}));
  if (st->shape.size() != 1) return Errorf("{}: shape {}, expected one dimension (the JSON bytes)", st->name, ShapeString(st->shape));
  const std::string_view text(reinterpret_cast<const char*>(st->data.data()), st->data.size());
  LOWBIT_ASSIGN_OR_RETURN(Bnb4State s, ParseBnb4State(text, st->name));
  const Bnb4Type key_type = st == st_nf4 ? Bnb4Type::kNf4 : Bnb4Type::kFp4;
  if (s.type != key_type)
    return Errorf("{}: field 'quant_type' is \"{}\" but the tensor name says {}", st->name, Bnb4TypeName(s.type), Bnb4TypeName(key_type));
  return s;
}

Expected<Bnb4Linear> ReadBnb4Linear(const TensorSet& ts, const std::string& prefix, int64_t rows, int64_t cols) {
  Bnb4Linear L;
  LOWBIT_ASSIGN_OR_RETURN(L.state, ReadBnb4State(ts, prefix));
  const Bnb4State& s = L.state;
  const std::string st_name = Bnb4StateTensorName(prefix, s.type);  // the state's tensor (its type matches its name)
  if (s.shape != std::vector<int64_t>{rows, cols})
    return Errorf("{}: field 'shape' is [{}], but config.json implies [{}, {}]", st_name, fmt::join(s.shape, ", "), rows, cols);
  L.rows = rows, L.cols = cols;
  const int64_t n = rows * cols, blocks = (n + s.blocksize - 1) / s.blocksize;

  LOWBIT_ASSIGN_OR_RETURN(const StTensor* w, Require(ts, prefix + ".weight"));
  LOWBIT_RETURN_IF_ERROR(ExpectDtype(*w, {StDtype::kU8}));
  if (w->n_elements() != static_cast<uint64_t>((n + 1) / 2) || w->shape.empty() || w->shape.size() > 2 ||
      (w->shape.size() == 2 && w->shape[1] != 1))
    return Errorf("{}: shape {}, but {} 4-bit codes need [{}, 1]", w->name, ShapeString(w->shape), n, (n + 1) / 2);
  L.packed = w->data;

  LOWBIT_ASSIGN_OR_RETURN(const StTensor* qm, Require(ts, prefix + ".weight.quant_map"));
  LOWBIT_RETURN_IF_ERROR(ExpectDtype(*qm, {StDtype::kF32}));
  LOWBIT_RETURN_IF_ERROR(ExpectShape(*qm, {16}, "a 4-bit code book"));
  LOWBIT_RETURN_IF_ERROR(CheckLevels(*qm, Bnb4Levels(s.type), s.type == Bnb4Type::kNf4 ? "NF4" : "FP4"));

  LOWBIT_ASSIGN_OR_RETURN(const StTensor* am, Require(ts, prefix + ".weight.absmax"));
  const std::string blocks_why = fmt::format("{} elements in blocks of {}", n, s.blocksize);
  LOWBIT_RETURN_IF_ERROR(ExpectShape(*am, {static_cast<uint64_t>(blocks)}, blocks_why));
  const StTensor* na = ts.Find(prefix + ".weight.nested_absmax");
  const StTensor* nq = ts.Find(prefix + ".weight.nested_quant_map");
  if (!s.nested) {
    if (na != nullptr || nq != nullptr)
      return Errorf("{}: the quant state has no nested_* fields, but tensor '{}' exists", st_name, (na != nullptr ? na : nq)->name);
    LOWBIT_RETURN_IF_ERROR(ExpectDtype(*am, {StDtype::kF32}));
    LOWBIT_ASSIGN_OR_RETURN(L.absmax, FiniteFloats(*am));
    return L;
  }
  if (na == nullptr) return Errorf("{}.weight.nested_absmax: tensor is missing (the quant state has nested_offset)", prefix);
  if (nq == nullptr) return Errorf("{}.weight.nested_quant_map: tensor is missing (the quant state has nested_offset)", prefix);
  LOWBIT_RETURN_IF_ERROR(ExpectDtype(*am, {StDtype::kU8}));
  const int64_t nested_blocks = (blocks + s.nested_blocksize - 1) / s.nested_blocksize;
  LOWBIT_RETURN_IF_ERROR(ExpectDtype(*na, {StDtype::kF32}));
  LOWBIT_RETURN_IF_ERROR(ExpectShape(*na, {static_cast<uint64_t>(nested_blocks)},
                                     fmt::format("{} absmax codes in blocks of {}", blocks, s.nested_blocksize)));
  LOWBIT_RETURN_IF_ERROR(ExpectDtype(*nq, {StDtype::kF32}));
  LOWBIT_RETURN_IF_ERROR(ExpectShape(*nq, {256}, "an 8-bit code map"));
  LOWBIT_ASSIGN_OR_RETURN(std::vector<float> nested, FiniteFloats(*na));
  LOWBIT_ASSIGN_OR_RETURN(std::vector<float> code, FiniteFloats(*nq));
  L.absmax.resize(static_cast<size_t>(blocks));
  DecodeBnbNestedAbsmax(am->data, nested, code, s.nested_offset, s.nested_blocksize, L.absmax);
  for (size_t i = 0; i < L.absmax.size(); ++i) {
    if (!std::isfinite(L.absmax[i])) return Errorf("{}: decoded absmax [{}] is {}", am->name, i, L.absmax[i]);
  }
  return L;
}

Expected<Bnb8Linear> ReadBnb8Linear(const TensorSet& ts, const std::string& prefix, int64_t rows, int64_t cols) {
  Bnb8Linear L;
  L.rows = rows, L.cols = cols;
  LOWBIT_ASSIGN_OR_RETURN(const StTensor* w, Require(ts, prefix + ".weight"));
  LOWBIT_RETURN_IF_ERROR(ExpectDtype(*w, {StDtype::kI8}));
  LOWBIT_RETURN_IF_ERROR(ExpectShape(*w, {static_cast<uint64_t>(rows), static_cast<uint64_t>(cols)}, "config.json"));
  L.q = w->data;
  LOWBIT_ASSIGN_OR_RETURN(const StTensor* scb, Require(ts, prefix + ".SCB"));
  LOWBIT_RETURN_IF_ERROR(ExpectDtype(*scb, {StDtype::kF32}));
  LOWBIT_RETURN_IF_ERROR(ExpectShape(*scb, {static_cast<uint64_t>(rows)}, "one scale per output row"));
  LOWBIT_ASSIGN_OR_RETURN(L.scb, FiniteFloats(*scb));
  for (size_t i = 0; i < L.scb.size(); ++i) {
    if (L.scb[i] < 0) return Errorf("{}: value [{}] is {}; a row absmax cannot be negative", scb->name, i, L.scb[i]);
  }
  if (const StTensor* f = ts.Find(prefix + ".weight_format")) {
    LOWBIT_RETURN_IF_ERROR(ExpectDtype(*f, {StDtype::kU8}));
    if (f->n_elements() != 1) return Errorf("{}: shape {}, expected a scalar", f->name, ShapeString(f->shape));
    if (f->data[0] != 0) return Errorf("{}: value {}; lowbit reads the \"row\" layout (0) only", f->name, f->data[0]);
  }
  return L;
}

std::vector<PackedTensor> Bnb4LinearTensors(const std::string& prefix, const Bnb4State& state, std::vector<uint8_t> packed,
                                            const std::vector<float>& absmax, const Bnb4Nested* nested) {
  auto floats = [](std::span<const float> v) {
    std::vector<uint8_t> b(v.size() * 4);
    if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
    return b;
  };
  std::vector<PackedTensor> out;
  const uint64_t nbytes = packed.size();
  out.push_back({prefix + ".weight", StDtype::kU8, {nbytes, 1}, std::move(packed)});
  if (nested != nullptr) {
    out.push_back({prefix + ".weight.absmax", StDtype::kU8, {nested->q.size()}, nested->q});
  } else {
    out.push_back({prefix + ".weight.absmax", StDtype::kF32, {absmax.size()}, floats(absmax)});
  }
  out.push_back({prefix + ".weight.quant_map", StDtype::kF32, {16}, floats(Bnb4Levels(state.type))});
  if (nested != nullptr) {
    out.push_back({prefix + ".weight.nested_absmax", StDtype::kF32, {nested->nested_absmax.size()}, floats(nested->nested_absmax)});
    out.push_back({prefix + ".weight.nested_quant_map", StDtype::kF32, {256}, floats(BnbDynamicMap())});
  }
  const std::string js = Bnb4StateJson(state);
  out.push_back({Bnb4StateTensorName(prefix, state.type), StDtype::kU8, {js.size()}, std::vector<uint8_t>(js.begin(), js.end())});
  return out;
}

std::vector<PackedTensor> Bnb8LinearTensors(const std::string& prefix, int64_t rows, int64_t cols, std::vector<uint8_t> q,
                                            const std::vector<float>& scb) {
  std::vector<uint8_t> s(scb.size() * 4);
  if (!scb.empty()) std::memcpy(s.data(), scb.data(), s.size());
  std::vector<PackedTensor> out;
  out.push_back({prefix + ".weight", StDtype::kI8, {static_cast<uint64_t>(rows), static_cast<uint64_t>(cols)}, std::move(q)});
  out.push_back({prefix + ".SCB", StDtype::kF32, {static_cast<uint64_t>(rows)}, std::move(s)});
  out.push_back({prefix + ".weight_format", StDtype::kU8, {}, {0}});
  return out;
}

}  // namespace lowbit

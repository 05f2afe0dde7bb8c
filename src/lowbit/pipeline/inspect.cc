#include "lowbit/pipeline/inspect.h"

#include <filesystem>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "lowbit/base/mapped_file.h"
#include "lowbit/formats/gguf_reader.h"
#include "lowbit/formats/hf.h"
#include "lowbit/formats/safetensors.h"

namespace lowbit {
namespace fs = std::filesystem;
namespace {

constexpr size_t kJsonArrayLimit = 32;

nlohmann::json ValueJson(const GgufValue& v) {
  switch (v.type()) {
    case GgufValueType::kString: return *v.AsString();
    case GgufValueType::kBool: return v.raw() != 0;
    case GgufValueType::kF32: case GgufValueType::kF64: return *v.AsFloat();
    case GgufValueType::kU64: return v.raw();
    case GgufValueType::kArray: {
      nlohmann::json a = nlohmann::json::array();
      for (size_t i = 0; i < v.elements().size() && i < kJsonArrayLimit; ++i) a.push_back(ValueJson(v.elements()[i]));
      return a;
    }
    default: return *v.AsInt();
  }
}

InspectReport FromGguf(const GgufFile& g) {
  InspectReport r;
  r.format = fmt::format("gguf v{}", g.version());
  r.shape_order = "ggml order, dims[0] (row length) first";
  r.file_size = g.file_size();
  r.alignment = g.alignment();
  for (const GgufKv& kv : g.kvs()) {
    InspectMetadata m;
    m.key = kv.key;
    m.type = std::string(GgufValueTypeName(kv.value.type()));
    if (kv.value.is_array()) {
      m.type = fmt::format("array[{}]", GgufValueTypeName(kv.value.element_type()));
      m.count = kv.value.elements().size();
    }
    m.value = kv.value.ToString(6);
    m.json = ValueJson(kv.value);
    r.metadata.push_back(std::move(m));
  }
  for (const GgufTensorInfo& t : g.tensors()) {
    r.tensors.push_back({t.name, std::string(TypeInfo(t.type).name),
                         std::vector<uint64_t>(t.dims.begin(), t.dims.begin() + t.n_dims), t.n_elements,
                         t.n_bytes});
  }
  return r;
}

void AddSafetensors(InspectReport& r, const std::vector<const StTensor*>& tensors) {
  for (const StTensor* t : tensors) {
    r.tensors.push_back({t->name, std::string(StDtypeName(t->dtype)), t->shape, t->n_elements(), t->data.size()});
  }
}

}  // namespace

uint64_t InspectReport::total_elements() const {
  uint64_t n = 0;
  for (const auto& t : tensors) n += t.n_elements;
  return n;
}
uint64_t InspectReport::total_bytes() const {
  uint64_t n = 0;
  for (const auto& t : tensors) n += t.n_bytes;
  return n;
}
double InspectReport::average_bits_per_weight() const {
  const uint64_t n = total_elements();
  return n ? 8.0 * total_bytes() / n : 0.0;
}

nlohmann::json InspectReport::ToJson() const {
  nlohmann::json j;
  j["path"] = path;
  j["format"] = format;
  j["shape_order"] = shape_order;
  j["file_size"] = file_size;
  if (alignment) j["alignment"] = alignment;
  nlohmann::json meta = nlohmann::json::array();
  for (const auto& m : metadata) {
    nlohmann::json e = {{"key", m.key}, {"type", m.type}, {"value", m.json}};
    if (m.count) e["count"] = m.count;
    meta.push_back(e);
  }
  j["metadata"] = meta;
  nlohmann::json ts = nlohmann::json::array();
  for (const auto& t : tensors) {
    ts.push_back({{"name", t.name}, {"type", t.type}, {"shape", t.shape}, {"elements", t.n_elements},
                  {"bytes", t.n_bytes}, {"bits_per_weight", t.bits_per_weight()}});
  }
  j["tensors"] = ts;
  j["tensor_count"] = tensors.size();
  j["total_elements"] = total_elements();
  j["total_bytes"] = total_bytes();
  j["bits_per_weight"] = average_bits_per_weight();
  return j;
}

std::string InspectReport::ToText() const {
  std::string s = fmt::format("{}: {}, {} bytes{}\n", path, format, file_size,
                              alignment ? fmt::format(", alignment {}", alignment) : "");
  if (!metadata.empty()) {
    s += fmt::format("\nmetadata ({} entries)\n", metadata.size());
    size_t kw = 0;
    for (const auto& m : metadata) kw = std::max(kw, m.key.size());
    for (const auto& m : metadata) {
      s += fmt::format("  {:<{}}  {:<14} {}\n", m.key, kw, m.type, m.value);
    }
  }
  size_t nw = 4;
  for (const auto& t : tensors) nw = std::max(nw, t.name.size());
  s += fmt::format("\ntensors ({}; shape in {})\n", tensors.size(), shape_order);
  s += fmt::format("  {:<{}}  {:<8} {:<20} {:>12} {:>7}\n", "name", nw, "type", "shape", "bytes", "bpw");
  for (const auto& t : tensors) {
    s += fmt::format("  {:<{}}  {:<8} {:<20} {:>12} {:>7.3f}\n", t.name, nw, t.type,
                     fmt::format("[{}]", fmt::join(t.shape, ", ")), t.n_bytes, t.bits_per_weight());
  }
  s += fmt::format("\ntotal: {} tensors, {} weights ({:.3f} M), {} bytes of tensor data, {:.4f} bits per weight\n",
                   tensors.size(), total_elements(), total_elements() / 1e6, total_bytes(),
                   average_bits_per_weight());
  return s;
}

Expected<InspectReport> Inspect(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    LOWBIT_ASSIGN_OR_RETURN(SafetensorsModel m, SafetensorsModel::Open(path));
    InspectReport r;
    r.path = path;
    r.format = "huggingface";
    r.shape_order = "numpy order, outermost first";
    for (const std::string& f : m.files()) r.file_size += fs::file_size(f, ec);
    if (fs::exists(fs::path(path) / "config.json")) {
      LOWBIT_ASSIGN_OR_RETURN(std::string text, ReadTextFile((fs::path(path) / "config.json").string()));
      nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
      if (j.is_object()) {
        for (auto it = j.begin(); it != j.end(); ++it) {
          r.metadata.push_back({"config." + it.key(), it.value().type_name(), it.value().dump(), it.value(), 0});
        }
      }
    }
    AddSafetensors(r, m.tensors());
    return r;
  }
  LOWBIT_ASSIGN_OR_RETURN(MappedFile probe, MappedFile::Open(path));
  if (probe.size() >= 4 && std::memcmp(probe.data(), "GGUF", 4) == 0) {
    LOWBIT_ASSIGN_OR_RETURN(GgufFile g, GgufFile::Open(path));
    InspectReport r = FromGguf(g);
    r.path = path;
    return r;
  }
  LOWBIT_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open(path));
  InspectReport r;
  r.path = path;
  r.format = "safetensors";
  r.shape_order = "numpy order, outermost first";
  r.file_size = f.file_size();
  for (const auto& [k, v] : f.metadata()) r.metadata.push_back({"__metadata__." + k, "string", v, v, 0});
  std::vector<const StTensor*> ts;
  for (const StTensor& t : f.tensors()) ts.push_back(&t);
  AddSafetensors(r, ts);
  return r;
}

}  // namespace lowbit

#include "lowbit/formats/safetensors.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

#include "lowbit/base/aligned_buffer.h"
#include "lowbit/base/atomic_file.h"

namespace lowbit {
namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

constexpr uint64_t kMaxHeaderSize = 100ull << 20;  // the reference implementation's limit

struct DtypeRow {
  StDtype dtype;
  std::string_view name;
  uint32_t size;
};
constexpr DtypeRow kDtypes[] = {
    {StDtype::kF64, "F64", 8},      {StDtype::kF32, "F32", 4},         {StDtype::kF16, "F16", 2},
    {StDtype::kBF16, "BF16", 2},    {StDtype::kI64, "I64", 8},         {StDtype::kI32, "I32", 4},
    {StDtype::kI16, "I16", 2},      {StDtype::kI8, "I8", 1},           {StDtype::kU64, "U64", 8},
    {StDtype::kU32, "U32", 4},      {StDtype::kU16, "U16", 2},         {StDtype::kU8, "U8", 1},
    {StDtype::kBool, "BOOL", 1},    {StDtype::kF8E4M3, "F8_E4M3", 1}, {StDtype::kF8E5M2, "F8_E5M2", 1},
};

Status ParseShape(const Json& j, std::vector<uint64_t>* shape, uint64_t* n) {
  if (!j.is_array()) return Status::Error("\"shape\" is not an array");
  if (j.size() > 8) return Errorf("\"shape\" has {} dimensions (limit 8)", j.size());
  *n = 1;
  for (const Json& d : j) {
    if (!d.is_number_unsigned()) return Status::Error("\"shape\" holds a value that is not a non-negative integer");
    uint64_t v = d.get<uint64_t>();
    if (v != 0 && *n > std::numeric_limits<uint64_t>::max() / v) return Status::Error("shape product overflows 64 bits");
    *n *= v;
    shape->push_back(v);
  }
  return OkStatus();
}

}  // namespace

std::string_view StDtypeName(StDtype d) {
  for (const auto& r : kDtypes) if (r.dtype == d) return r.name;
  return "?";
}
bool ParseStDtype(std::string_view name, StDtype* out) {
  for (const auto& r : kDtypes) {
    if (r.name == name) {
      *out = r.dtype;
      return true;
    }
  }
  return false;
}
uint32_t StDtypeSize(StDtype d) {
  for (const auto& r : kDtypes) if (r.dtype == d) return r.size;
  return 0;
}

uint64_t StTensor::n_elements() const {
  return std::accumulate(shape.begin(), shape.end(), uint64_t{1}, std::multiplies<>());
}

Expected<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  LOWBIT_ASSIGN_OR_RETURN(MappedFile map, MappedFile::Open(path));
  SafetensorsFile f;
  f.name_ = path;
  f.map_ = std::move(map);
  LOWBIT_RETURN_IF_ERROR(f.ParseAll(f.map_.bytes()));
  return f;
}

Expected<SafetensorsFile> SafetensorsFile::Parse(std::span<const uint8_t> bytes, const std::string& name) {
  SafetensorsFile f;
  f.name_ = name;
  LOWBIT_RETURN_IF_ERROR(f.ParseAll(bytes));
  return f;
}

Status SafetensorsFile::ParseAll(std::span<const uint8_t> bytes) {
  file_size_ = bytes.size();
  if (bytes.size() < 8) {
    return Errorf("{}: at byte 0: file is {} bytes, too short for a safetensors header", name_, bytes.size());
  }
  uint64_t header_size = 0;
  std::memcpy(&header_size, bytes.data(), 8);
  if (header_size > bytes.size() - 8) {
    return Errorf("{}: at byte 0: header size {} is larger than the {} bytes that follow; the file is "
                  "truncated or not safetensors", name_, header_size, bytes.size() - 8);
  }
  if (header_size > kMaxHeaderSize) {
    return Errorf("{}: at byte 0: header size {} exceeds the 100 MiB limit", name_, header_size);
  }
  std::string_view text(reinterpret_cast<const char*>(bytes.data() + 8), header_size);
  Json header = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) {
    return Errorf("{}: at byte 8: the header is not a JSON object", name_);
  }
  const uint64_t data_start = 8 + header_size;
  const uint64_t data_size = bytes.size() - data_start;
  struct Range { uint64_t begin, end; size_t index; };
  std::vector<Range> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& key = it.key();
    const Json& v = it.value();
    if (key == "__metadata__") {
      if (!v.is_object()) return Errorf("{}: header: \"__metadata__\" must be an object", name_);
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) {
          return Errorf("{}: header: \"__metadata__\".\"{}\" must be a string", name_, m.key());
        }
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    auto where = [&](const std::string& what) {
      return Errorf("{}: header: tensor '{}': {}", name_, key, what);
    };
    if (!v.is_object()) return where("entry is not an object");
    auto dt = v.find("dtype");
    auto sh = v.find("shape");
    auto of = v.find("data_offsets");
    if (dt == v.end() || sh == v.end() || of == v.end()) {
      return where("needs \"dtype\", \"shape\" and \"data_offsets\"");
    }
    StTensor t;
    t.name = key;
    if (!dt->is_string() || !ParseStDtype(dt->get<std::string>(), &t.dtype)) {
      return where(fmt::format("unknown dtype {} (known: F64 F32 F16 BF16 I64 I32 I16 I8 U64 U32 U16 "
                               "U8 BOOL F8_E4M3 F8_E5M2)", dt->dump()));
    }
    uint64_t n = 0;
    Status s = ParseShape(*sh, &t.shape, &n);
    if (!s.ok()) return where(s.message());
    if (!of->is_array() || of->size() != 2 || !(*of)[0].is_number_unsigned() ||
        !(*of)[1].is_number_unsigned()) {
      return where("\"data_offsets\" must be two non-negative integers");
    }
    const uint64_t b = (*of)[0].get<uint64_t>(), e = (*of)[1].get<uint64_t>();
    if (b > e || e > data_size) {
      return where(fmt::format("data_offsets [{}, {}] fall outside the {}-byte data section{}", b, e,
                               data_size, e > data_size ? "; the file is truncated" : ""));
    }
    const uint64_t elem = StDtypeSize(t.dtype);
    if (n > std::numeric_limits<uint64_t>::max() / elem || n * elem != e - b) {
      return where(fmt::format("shape holds {} {} elements but data_offsets span {} bytes", n,
                               StDtypeName(t.dtype), e - b));
    }
    t.data = bytes.subspan(data_start + b, e - b);
    ranges.push_back({b, e, tensors_.size()});
    index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].begin < ranges[i - 1].end) {
      return Errorf("{}: header: tensors '{}' and '{}' overlap", name_, tensors_[ranges[i - 1].index].name,
                    tensors_[ranges[i].index].name);
    }
  }
  // Present tensors in data order (the order writers lay them out).
  std::vector<StTensor> ordered;
  ordered.reserve(tensors_.size());
  index_.clear();
  for (const Range& r : ranges) {
    index_.emplace(tensors_[r.index].name, ordered.size());
    ordered.push_back(std::move(tensors_[r.index]));
  }
  tensors_ = std::move(ordered);
  return OkStatus();
}

const StTensor* SafetensorsFile::Find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Expected<std::vector<std::pair<std::string, std::string>>> ParseSafetensorsIndex(std::string_view json,
                                                                                 const std::string& name) {
  Json j = Json::parse(json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Errorf("{}: not a JSON object", name);
  auto wm = j.find("weight_map");
  if (wm == j.end() || !wm->is_object()) return Errorf("{}: missing object \"weight_map\"", name);
  std::vector<std::pair<std::string, std::string>> out;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it.value().is_string()) return Errorf("{}: weight_map.\"{}\" must be a file name", name, it.key());
    std::string file = it.value().get<std::string>();
    if (file.empty() || file.find('/') != std::string::npos || file.find('\\') != std::string::npos ||
        file == "." || file == "..") {
      return Errorf("{}: weight_map.\"{}\" names '{}', which is not a plain file name in the model "
                    "folder", name, it.key(), file);
    }
    out.emplace_back(it.key(), std::move(file));
  }
  return out;
}

Expected<SafetensorsModel> SafetensorsModel::Open(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path p(path);
  fs::path index_path;
  fs::path single;
  if (fs::is_directory(p, ec)) {
    if (fs::exists(p / "model.safetensors.index.json", ec)) index_path = p / "model.safetensors.index.json";
    else if (fs::exists(p / "model.safetensors", ec)) single = p / "model.safetensors";
    else return Errorf("{}: no model.safetensors or model.safetensors.index.json in this folder", path);
  } else if (p.string().ends_with(".json")) {
    index_path = p;
  } else {
    single = p;
  }
  SafetensorsModel m;
  auto add_file = [&](const fs::path& file) -> Status {
    LOWBIT_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open(file.string()));
    m.shards_.push_back(std::make_unique<SafetensorsFile>(std::move(f)));
    m.files_.push_back(file.string());
    return OkStatus();
  };
  if (!single.empty()) {
    LOWBIT_RETURN_IF_ERROR(add_file(single));
    for (const StTensor& t : m.shards_[0]->tensors()) m.by_name_.emplace(t.name, &t);
    return m;
  }
  std::ifstream in(index_path);
  if (!in) return Errorf("{}: cannot open", index_path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  LOWBIT_ASSIGN_OR_RETURN(auto entries, ParseSafetensorsIndex(ss.str(), index_path.string()));
  std::unordered_map<std::string, size_t> file_index;
  for (const auto& [tensor, file] : entries) {
    if (!file_index.count(file)) {
      LOWBIT_RETURN_IF_ERROR(add_file(index_path.parent_path() / file));
      file_index[file] = m.shards_.size() - 1;
    }
    const StTensor* t = m.shards_[file_index[file]]->Find(tensor);
    if (t == nullptr) {
      return Errorf("{}: the index places tensor '{}' in {}, but that file does not hold it",
                    index_path.string(), tensor, file);
    }
    if (!m.by_name_.emplace(tensor, t).second) {
      return Errorf("{}: tensor '{}' is listed twice", index_path.string(), tensor);
    }
  }
  return m;
}

std::vector<const MappedFile*> SafetensorsModel::mappings() const {
  std::vector<const MappedFile*> out;
  for (const auto& s : shards_) out.push_back(&s->file());
  return out;
}

const StTensor* SafetensorsModel::Find(std::string_view name) const {
  auto it = by_name_.find(std::string(name));
  return it == by_name_.end() ? nullptr : it->second;
}

std::vector<const StTensor*> SafetensorsModel::tensors() const {
  std::vector<const StTensor*> out;
  for (const auto& shard : shards_) {
    for (const StTensor& t : shard->tensors()) {
      auto it = by_name_.find(t.name);
      if (it != by_name_.end() && it->second == &t) out.push_back(&t);
    }
  }
  return out;
}

Status SafetensorsWriter::Add(const std::string& name, StDtype dtype, std::vector<uint64_t> shape,
                              Producer producer) {
  if (name.empty() || name == "__metadata__") return Errorf("invalid safetensors tensor name '{}'", name);
  for (const Entry& e : entries_) {
    if (e.name == name) return Errorf("tensor '{}' added twice", name);
  }
  uint64_t n = 1;
  for (uint64_t d : shape) {
    if (d != 0 && n > std::numeric_limits<uint64_t>::max() / d) return Errorf("tensor '{}': shape overflows", name);
    n *= d;
  }
  entries_.push_back({name, dtype, std::move(shape), n * StDtypeSize(dtype), std::move(producer)});
  return OkStatus();
}

Status SafetensorsWriter::Write(const std::string& path) const {
  OrderedJson header = OrderedJson::object();
  if (!metadata_.empty()) {
    OrderedJson meta = OrderedJson::object();
    for (const auto& [k, v] : metadata_) meta[k] = v;
    header["__metadata__"] = meta;
  }
  uint64_t offset = 0;
  size_t max_bytes = 0;
  for (const Entry& e : entries_) {
    header[e.name] = {{"dtype", StDtypeName(e.dtype)}, {"shape", e.shape}, {"data_offsets", {offset, offset + e.bytes}}};
    offset += e.bytes;
    max_bytes = std::max<size_t>(max_bytes, e.bytes);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  LOWBIT_ASSIGN_OR_RETURN(AtomicFile file, AtomicFile::Create(path));
  const uint64_t n = text.size();
  LOWBIT_RETURN_IF_ERROR(file.Write(&n, 8));
  LOWBIT_RETURN_IF_ERROR(file.Write(text.data(), text.size()));
  AlignedBuffer buffer(max_bytes);
  for (const Entry& e : entries_) {
    std::span<uint8_t> out(buffer.data(), e.bytes);
    Status s = e.producer(out);
    if (!s.ok()) return s.WithContext(fmt::format("{}: tensor '{}'", path, e.name));
    LOWBIT_RETURN_IF_ERROR(file.Write(out));
  }
  return file.Commit();
}

}  // namespace lowbit

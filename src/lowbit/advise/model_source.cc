#include "lowbit/advise/model_source.h"

#include <filesystem>
#include <map>
#include <mutex>

#include "lowbit/formats/gguf_writer.h"
#include "lowbit/numeric/bnb.h"
#include "lowbit/pipeline/quant_mix.h"
#include "lowbit/pipeline/quantize.h"

namespace lowbit {
namespace {

uint64_t MergesOf(const GgufFile& g) {
  const GgufValue* m = g.Find("tokenizer.ggml.merges");
  return m != nullptr && m->type() == GgufValueType::kArray ? m->elements().size() : 0;
}

bool IsTokenizerKey(const std::string& key) { return key.rfind("tokenizer.", 0) == 0; }

// The stand-in for the tokenizer's entries: one string entry of the same serialized size (its key,
// 8-byte length, 4-byte type, 8-byte length, then the string).
constexpr char kStandInKey[] = "lowbit.plan.tokenizer";
constexpr uint64_t kStandInOverhead = 8 + sizeof(kStandInKey) - 1 + 4 + 8;

// The serialized size of the tokenizer.* entries of `kvs`.
uint64_t TokenizerBytes(const std::vector<GgufKv>& kvs) {
  GgufWriter t;
  t.set_pad_empty_data(false);
  for (const GgufKv& kv : kvs) {
    if (IsTokenizerKey(kv.key)) t.SetKv(kv.key, kv.value);
  }
  return t.FileSize() - 24;  // less the magic, version and the two counts
}

// Copies `from`'s metadata but the tokenizer's, which a stand-in of `tokenizer_bytes` replaces.
void CopyKvs(const std::vector<GgufKv>& from, uint64_t tokenizer_bytes, GgufWriter* w) {
  bool stand_in = tokenizer_bytes >= kStandInOverhead;
  for (const GgufKv& kv : from) {
    if (!IsTokenizerKey(kv.key) || !stand_in) w->SetKv(kv.key, kv.value);
  }
  if (stand_in) w->SetKv(kStandInKey, GgufValue::String(std::string(tokenizer_bytes - kStandInOverhead, ' ')));
}

// Loads the model a header describes. `what` names the plan in messages.
Expected<PlannedModel> FromWriter(const GgufWriter& w, const std::string& type, const std::string& what, uint64_t merges) {
  PlannedModel p;
  p.type = type;
  p.file_bytes = w.FileSize();
  const std::vector<uint8_t> header = w.HeaderBytes();
  LOWBIT_ASSIGN_OR_RETURN(GgufFile g, GgufFile::FromHeader(header, p.file_bytes, what));
  p.file = std::make_unique<GgufFile>(std::move(g));
  LOWBIT_ASSIGN_OR_RETURN(p.model, LlamaModel::Load(*p.file));
  p.n_merges = merges;
  return p;
}

// The weights' own type: the type of the first 2-D float tensor.
std::string WeightTypeOf(const ConversionPlan& plan) {
  for (const PlannedTensor& t : plan.tensors) {
    if (t.dims.size() >= 2 && IsFloatType(t.source_type)) return std::string(TypeInfo(t.source_type).name);
  }
  return "F32";
}

uint64_t ViewBytes(const WeightView& w) { return *RowBytes(w.type, static_cast<uint64_t>(w.cols)) * static_cast<uint64_t>(w.rows); }

// A folder candidate's on-disk bytes of one [rows x cols] linear layer.
uint64_t FolderLinearBytes(GgmlType t, uint64_t rows, uint64_t cols) {
  if (t == GgmlType::kW4G128) {
    const uint64_t groups = cols / 128;
    return rows * cols / 2 + groups * rows / 2 + groups * rows * 2 + cols * 4;  // qweight, qzeros, scales, g_idx
  }
  const uint64_t blocks = rows * cols / 64;  // NF4 + double quant, block 64
  return rows * cols / 2 + blocks + (blocks + 255) / 256 * 4 + 16 * 4 + 256 * 4;  // codes, absmax, nested absmax, the two maps
}

// `f16` (the model planned in F16) with its decoder linears retyped to `t`: views only, nothing is read.
// NF4 rows are the ones the loader picks (Bnb4RowType: NF4G64x2 or NF4G64 by the width).
Status RetypeLinears(PlannedModel* f16, GgmlType t, const std::string& type_name) {
  const int64_t group = t == GgmlType::kW4G128 ? 128 : 64;
  uint64_t replaced_f16 = 0, in_memory = 0, on_disk = 0;
  auto retype = [&](WeightView& w) -> Status {
    if (w.data == nullptr || w.rows == 0) return OkStatus();
    if (w.cols % group != 0) {
      return Errorf("{}: a {} layer needs an input width that is a multiple of {}, and this model has a layer {} wide",
                    type_name, type_name, group, w.cols);
    }
    const GgmlType row_type = IsBnb4Type(t) ? *Bnb4RowType(Bnb4TypeOf(t), w.cols, group) : t;
    replaced_f16 += ViewBytes(w);
    on_disk += FolderLinearBytes(row_type, static_cast<uint64_t>(w.rows), static_cast<uint64_t>(w.cols));
    w.type = row_type;
    in_memory += ViewBytes(w);
    return OkStatus();
  };
  for (LlamaModel::Layer& L : f16->model.layers) {
    for (WeightView* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.gate, &L.up, &L.down, &L.shexp_gate, &L.shexp_up, &L.shexp_down}) {
      LOWBIT_RETURN_IF_ERROR(retype(*w));
    }
    for (auto* experts : {&L.gate_exps, &L.up_exps, &L.down_exps}) {
      for (WeightView& w : *experts) LOWBIT_RETURN_IF_ERROR(retype(w));
    }
  }
  f16->type = type_name;
  f16->folder_bytes = f16->file_bytes - replaced_f16 + on_disk;
  f16->file_bytes = f16->file_bytes - replaced_f16 + in_memory;
  return OkStatus();
}

}  // namespace

bool IsFolderCandidate(const std::string& type) { return type == "GPTQ-W4G128" || type == "NF4"; }

uint64_t PlannedModel::UnreadBytes() const {
  if (model.output.data == model.token_embd.data) return 0;  // tied: the embedding is the classifier
  const WeightView& e = model.token_embd;
  return *RowBytes(e.type, static_cast<uint64_t>(e.cols)) * static_cast<uint64_t>(e.rows);
}

Expected<PlannedModel> PlanGguf(const std::string& path) {
  PlannedModel p;
  LOWBIT_ASSIGN_OR_RETURN(GgufFile g, GgufFile::Open(path, Residency::kMapped));
  p.file = std::make_unique<GgufFile>(std::move(g));
  p.file_bytes = p.file->file_size();
  const GgufValue* ft = p.file->Find("general.file_type");
  p.type = ft != nullptr && ft->AsUInt() ? FileTypeName(static_cast<uint32_t>(*ft->AsUInt())) : "";
  LOWBIT_ASSIGN_OR_RETURN(p.model, LlamaModel::Load(*p.file));
  // Without general.file_type (llama.cpp's F32 files have none), the type of the layers' weights.
  if (p.type.empty() && !p.model.layers.empty()) p.type = std::string(TypeInfo(p.model.layers[0].wq.type).name);
  p.n_merges = MergesOf(*p.file);
  return p;
}

const std::vector<std::string>& DefaultCandidateTypes() {
  static const std::vector<std::string> types = {"F16",    "Q8_0",   "Q6_K", "Q5_K_M",      "Q4_K_M",
                                                 "IQ4_XS", "Q3_K_M", "Q2_K", "GPTQ-W4G128", "NF4"};
  return types;
}

Expected<ModelSource> ModelSource::Open(const std::string& arg) {
  std::error_code ec;
  if (!std::filesystem::exists(arg, ec)) {
    auto shape = FindSynthShape(arg);
    if (shape.ok()) return FromShape(*shape);
    std::string names;
    for (const SynthShape& s : SynthShapes()) names += (names.empty() ? "" : ", ") + s.name;
    return Errorf("{}: no such file or folder, nor a shape name ({})", arg, names);
  }
  ModelSource s;
  s.name_ = arg;
  s.path_ = arg;
  LOWBIT_ASSIGN_OR_RETURN(ConversionPlan plan, PlanConversion(arg, ""));
  s.kind_ = plan.input_kind;
  if (s.kind_ == "safetensors") {
    return Errorf("{}: a safetensors file without a config.json beside it has no model hyperparameters; put the "
                  "model's config.json in the same folder", arg);
  }
  s.plan_ = std::make_shared<ConversionPlan>(std::move(plan));
  s.tokenizer_.bytes = TokenizerBytes(s.plan_->kvs);
  for (const GgufKv& kv : s.plan_->kvs) {
    if (kv.key == "tokenizer.ggml.merges" && kv.value.type() == GgufValueType::kArray) s.tokenizer_.merges = kv.value.elements().size();
  }
  return s;
}

ModelSource ModelSource::FromShape(const SynthShape& shape) {
  ModelSource s;
  s.name_ = shape.name;
  s.kind_ = "shape";
  s.shape_ = shape;
  // The synthetic vocabulary's size, measured once per vocabulary size (128k entries take a while).
  static std::mutex mu;
  static std::map<int64_t, uint64_t> measured;
  std::lock_guard<std::mutex> lock(mu);
  auto it = measured.find(shape.n_vocab);
  if (it == measured.end()) {
    SynthOptions o;
    o.shape = shape.name;
    auto w = SynthWriter(o);
    it = measured.emplace(shape.n_vocab, w.ok() ? TokenizerBytes(w->kvs()) : 0).first;
  }
  s.tokenizer_.bytes = it->second;
  return s;
}

Expected<PlannedModel> ModelSource::AsIs() const {
  if (kind_ == "shape") return Errorf("{} is a shape, not a file", name_);
  if (kind_ == "gguf") return PlanGguf(path_);
  // What `lowbit convert --outtype <the weights' type>` writes: 2-D weights as they are, norms F32.
  return As(WeightTypeOf(*plan_));
}

Expected<PlannedModel> ModelSource::As(const std::string& type) const {
  if (IsFolderCandidate(type)) {
    LOWBIT_ASSIGN_OR_RETURN(PlannedModel p, As("F16"));
    LOWBIT_RETURN_IF_ERROR(RetypeLinears(&p, type == "NF4" ? GgmlType::kNF4G64x2 : GgmlType::kW4G128, type));
    return p;
  }
  LOWBIT_ASSIGN_OR_RETURN(QuantMix mix, ResolveQuantMix(type));
  const std::string what = name_ + " as " + mix.name;
  GgufWriter w;
  if (kind_ == "shape") {
    SynthOptions o;
    o.shape = shape_.name;
    o.type = mix.name;
    o.vocab = false;
    LOWBIT_ASSIGN_OR_RETURN(GgufWriter plain, SynthWriter(o));
    CopyKvs(plain.kvs(), tokenizer_.bytes, &w);
    for (size_t i = 0; i < plain.tensor_count(); ++i) {
      const GgufTensorInfo& t = plain.tensor_info(i);
      LOWBIT_RETURN_IF_ERROR(w.AddTensor(t.name, t.type, std::span<const uint64_t>(t.dims.data(), t.n_dims), nullptr));
    }
    return FromWriter(w, mix.name, what, tokenizer_.merges);
  }
  QuantizeOptions q;
  q.input = path_;
  q.type = mix.name;
  q.allow_requantize = true;
  LOWBIT_ASSIGN_OR_RETURN(std::vector<PlannedType> types, PlanQuantizedTypes(*plan_, q, false));
  // As QuantizeModel writes it: the plan's metadata, then the two quantization keys.
  CopyKvs(plan_->kvs, tokenizer_.bytes, &w);
  for (size_t i = 0; i < plan_->tensors.size(); ++i) {
    LOWBIT_RETURN_IF_ERROR(w.AddTensor(plan_->tensors[i].name, types[i].type, plan_->tensors[i].dims, nullptr));
  }
  w.SetKv("general.file_type", GgufValue::U32(mix.file_type));
  w.SetKv("general.quantization_version", GgufValue::U32(2));
  return FromWriter(w, mix.name, what, tokenizer_.merges);
}

}  // namespace lowbit

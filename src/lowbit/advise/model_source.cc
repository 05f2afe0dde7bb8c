#include "lowbit/advise/model_source.h"

#include <filesystem>

#include "lowbit/formats/gguf_writer.h"
#include "lowbit/pipeline/quant_mix.h"
#include "lowbit/pipeline/quantize.h"

namespace lowbit {
namespace {

uint64_t MergesOf(const GgufFile& g) {
  const GgufValue* m = g.Find("tokenizer.ggml.merges");
  return m != nullptr && m->type() == GgufValueType::kArray ? m->elements().size() : 0;
}

// Loads the model a header describes. `what` names the plan in messages.
Expected<PlannedModel> FromWriter(const GgufWriter& w, const std::string& type, const std::string& what) {
  PlannedModel p;
  p.type = type;
  p.file_bytes = w.FileSize();
  const std::vector<uint8_t> header = w.HeaderBytes();
  LOWBIT_ASSIGN_OR_RETURN(GgufFile g, GgufFile::FromHeader(header, p.file_bytes, what));
  p.file = std::make_unique<GgufFile>(std::move(g));
  LOWBIT_ASSIGN_OR_RETURN(p.model, LlamaModel::Load(*p.file));
  p.n_merges = MergesOf(*p.file);
  return p;
}

// The plan's tensors with the types `types` gives, and metadata as `lowbit quantize` writes it.
Expected<PlannedModel> FromPlan(const ConversionPlan& plan, const std::vector<PlannedType>& types, const std::string& type,
                                std::optional<uint32_t> file_type, const std::string& what) {
  GgufWriter w;
  for (const GgufKv& kv : plan.kvs) w.SetKv(kv.key, kv.value);
  for (size_t i = 0; i < plan.tensors.size(); ++i) {
    LOWBIT_RETURN_IF_ERROR(w.AddTensor(plan.tensors[i].name, types[i].type, plan.tensors[i].dims, nullptr));
  }
  if (file_type) {
    w.SetKv("general.file_type", GgufValue::U32(*file_type));
    w.SetKv("general.quantization_version", GgufValue::U32(2));
  }
  return FromWriter(w, type, what);
}

// The weights' own type: the type of the first 2-D float tensor.
std::string WeightTypeOf(const ConversionPlan& plan) {
  for (const PlannedTensor& t : plan.tensors) {
    if (t.dims.size() >= 2 && IsFloatType(t.source_type)) return std::string(TypeInfo(t.source_type).name);
  }
  return "F32";
}

}  // namespace

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
  if (p.type.empty()) p.type = "as is";
  LOWBIT_ASSIGN_OR_RETURN(p.model, LlamaModel::Load(*p.file));
  p.n_merges = MergesOf(*p.file);
  return p;
}

const std::vector<std::string>& DefaultCandidateTypes() {
  static const std::vector<std::string> types = {"F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "IQ4_XS", "Q3_K_M", "Q2_K"};
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
  return s;
}

ModelSource ModelSource::FromShape(const SynthShape& shape) {
  ModelSource s;
  s.name_ = shape.name;
  s.kind_ = "shape";
  s.shape_ = shape;
  return s;
}

Expected<PlannedModel> ModelSource::AsIs() const {
  if (kind_ == "shape") return Errorf("{} is a shape, not a file", name_);
  if (kind_ == "gguf") return PlanGguf(path_);
  // What `lowbit convert --outtype <the weights' type>` writes: 2-D weights as they are, norms F32.
  return As(WeightTypeOf(*plan_));
}

Expected<PlannedModel> ModelSource::As(const std::string& type) const {
  LOWBIT_ASSIGN_OR_RETURN(QuantMix mix, ResolveQuantMix(type));
  const std::string what = name_ + " as " + mix.name;
  if (kind_ == "shape") {
    SynthOptions o;
    o.shape = shape_.name;
    o.type = mix.name;
    LOWBIT_ASSIGN_OR_RETURN(GgufWriter w, SynthWriter(o));
    return FromWriter(w, mix.name, what);
  }
  QuantizeOptions q;
  q.input = path_;
  q.type = mix.name;
  q.allow_requantize = true;
  LOWBIT_ASSIGN_OR_RETURN(std::vector<PlannedType> types, PlanQuantizedTypes(*plan_, q, false));
  return FromPlan(*plan_, types, mix.name, mix.file_type, what);
}

}  // namespace lowbit

#include "lowbit/pipeline/quantize_folder.h"


#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>
#include <memory>

#include <fmt/format.h>

#include "lowbit/base/thread_pool.h"
#include "lowbit/formats/int_quant.h"
#include "lowbit/formats/quant_checkpoint.h"
#include "lowbit/formats/quant_config.h"
#include "lowbit/formats/safetensors.h"
#include "lowbit/numeric/ggml_type.h"
#include "lowbit/numeric/convert.h"
#include "lowbit/formats/hf.h"
#include "lowbit/pipeline/calibrated.h"
#include "lowbit/pipeline/folder_write.h"
#include "lowbit/pipeline/row_convert.h"
#include "lowbit/quant/error_stats.h"

namespace lowbit {
namespace fs = std::filesystem;

namespace {

Expected<StDtype> StDtypeOf(GgmlType t, const std::string& name) {
  switch (t) {
    case GgmlType::kF32: return StDtype::kF32;
    case GgmlType::kF16: return StDtype::kF16;
    case GgmlType::kBF16: return StDtype::kBF16;
    default: return Errorf("tensor '{}' is {}: a GPTQ/AWQ folder keeps its other tensors in F32, F16 or BF16", name, TypeInfo(t).name);
  }
}

// Float values in a safetensors float dtype (round to nearest even, as torch's .to() does).
std::vector<uint8_t> FloatsAs(const std::vector<float>& v, StDtype d) {
  std::vector<uint8_t> out(v.size() * StDtypeSize(d));
  if (d == StDtype::kF32) std::memcpy(out.data(), v.data(), out.size());
  else if (d == StDtype::kF16) ConvertF32ToF16(v.data(), reinterpret_cast<uint16_t*>(out.data()), v.size());
  else ConvertF32ToBf16(v.data(), reinterpret_cast<uint16_t*>(out.data()), v.size());
  return out;
}

// The grid's values in the checkpoint's shape, rows in Hugging Face order: GGUF row r of a q/k
// matrix is Hugging Face row UnpermuteSourceRow(r).
IntQuantLinear ToCheckpointRows(LinearQuantized&& q, uint32_t unpermute_heads) {
  IntQuantLinear out;
  out.bits = q.bits;
  out.rows = q.rows;
  out.cols = q.cols;
  out.group_size = q.group_size;
  out.g_idx = std::move(q.g_idx);
  out.scale_dtype = ScaleDtype::kF16;
  if (unpermute_heads == 0) {
    out.codes = std::move(q.codes);
    out.scales = std::move(q.scales);
    out.zeros = std::move(q.zeros);
    return out;
  }
  const int64_t rows = q.rows, cols = q.cols, groups = q.n_groups();
  out.codes.resize(q.codes.size());
  out.scales.resize(q.scales.size());
  out.zeros.resize(q.zeros.size());
  for (int64_t r = 0; r < rows; ++r) {
    const auto h = static_cast<int64_t>(UnpermuteSourceRow(static_cast<uint64_t>(r), static_cast<uint64_t>(rows), unpermute_heads));
    std::memcpy(out.codes.data() + h * cols, q.codes.data() + r * cols, static_cast<size_t>(cols));
    for (int64_t g = 0; g < groups; ++g) {
      out.scales[g * rows + h] = q.scales[g * rows + r];
      out.zeros[g * rows + h] = q.zeros[g * rows + r];
    }
  }
  return out;
}

}  // namespace

Expected<QuantConfig> FolderQuantConfig(const FolderQuantOptions& f, double damp_percent) {
  if (f.format != "gptq" && f.format != "awq") return Errorf("--format {}: expected gguf, gptq or awq", f.format);
  const bool awq = f.format == "awq";
  QuantConfig qc;
  qc.method = awq ? QuantMethod::kAwq : QuantMethod::kGptq;
  qc.format = awq ? CheckpointFormat::kAwqGemm : CheckpointFormat::kGptq;
  qc.bits = f.bits;
  qc.group_size = f.group_size;
  qc.sym = f.sym.value_or(!awq);
  qc.desc_act = f.act_order;
  qc.static_groups = f.static_groups;
  qc.damp_percent = damp_percent;
  qc.zero_point = !qc.sym;
  if (awq && qc.sym) return Errorf("--format awq stores zero points (AutoAWQ's GEMM layout): drop --sym");
  if (awq && (f.act_order || f.static_groups)) return Errorf("--act-order and --static-groups are GPTQ options, not AWQ's");
  LOWBIT_RETURN_IF_ERROR(CheckWritableConfig(qc));
  return qc;
}

Expected<LinearQuantSpec> FolderGridSpec(const FolderQuantOptions& f, const QuantConfig& qc) {
  LinearQuantSpec spec;
  spec.bits = f.bits;
  spec.sym = qc.sym;
  spec.granularity = f.group_size < 0 ? QuantGranularity::kPerChannel : QuantGranularity::kPerGroup;
  spec.group_size = f.group_size < 0 ? 128 : f.group_size;
  spec.convention = qc.method == QuantMethod::kAwq ? QuantConvention::kAwq : QuantConvention::kGptq;
  if (f.range == "mse") {
    spec.range = QuantRange::kMse;
  } else if (f.range != "minmax") {
    return Errorf("--range {}: expected minmax or mse", f.range);
  }
  return spec;
}

Expected<ConversionPlan> PlanFolderInput(const std::string& input, const std::string& output, const std::string& format,
                                         const std::string& vocab) {
  std::error_code ec;
  if (!fs::is_directory(input, ec) || !fs::exists(fs::path(input) / "config.json", ec)) {
    return Errorf("{}: --format {} writes a Hugging Face folder and reads one (config.json, safetensors and the tokenizer "
                  "files it carries over); convert other inputs to a folder first", input, format);
  }
  if (fs::exists(output, ec)) return Errorf("{}: already exists; --format {} writes a new folder", output, format);
  LOWBIT_ASSIGN_OR_RETURN(ConversionPlan plan, PlanConversion(input, vocab));
  for (const PlannedTensor& t : plan.tensors) {
    if (t.quant != nullptr || t.bnb != nullptr) {
      return Errorf("{}: already quantized ('{}'); quantizing it again rounds twice: convert it with --outtype f32 first", input,
                    t.source_name);
    }
  }
  if (plan.input_kind != "huggingface") return Errorf("{}: not a Hugging Face llama folder", input);
  return plan;
}

Expected<QuantizeReport> WriteQuantizedFolder(const ConversionPlan& plan, const std::string& input, const std::string& output,
                                              const QuantConfig& qc, const FolderContents& contents, QuantizeReport report) {
  const bool awq = qc.method == QuantMethod::kAwq;
  std::error_code ec;
  std::vector<PackedTensor> packed;
  std::set<std::string> written_source;  // a tied classifier shares the embedding's bytes
  report.tensors.assign(plan.tensors.size(), {});
  for (size_t k : LayerOrder(plan)) {
    const PlannedTensor& t = plan.tensors[k];
    TensorQuantReport& rep = report.tensors[k];
    rep.name = t.name;
    rep.shape = t.dims;
    rep.source_type = std::string(TypeInfo(t.source_type).name);
    report.input_tensor_bytes += t.data.size();
    if (t.source_name.empty()) return Errorf("{}: tensor '{}' has no Hugging Face name", input, t.name);
    // The layer matrices (a llama plan's only 2-D tensors under blk.) are quantized; the rest is
    // copied as it is, or written with the values the caller gives.
    const bool matrix = t.name.starts_with("blk.") && t.dims.size() == 2;
    if (!matrix) {
      if (!written_source.insert(t.source_name).second) {
        rep.type = rep.source_type;
        rep.note = "tied to " + t.source_name;
        continue;
      }
      LOWBIT_ASSIGN_OR_RETURN(FolderValues v, contents.other(t, &rep));
      LOWBIT_ASSIGN_OR_RETURN(StDtype dt, StDtypeOf(v.f32 ? GgmlType::kF32 : t.source_type, t.name));
      std::vector<uint64_t> shape(t.dims.rbegin(), t.dims.rend());
      PackedTensor p{t.source_name, dt, shape, {}};
      if (!v.values.empty()) p.bytes = FloatsAs(v.values, dt);
      else p.bytes.assign(t.data.begin(), t.data.end());
      rep.type = v.f32 ? "F32" : rep.source_type;
      rep.n_elements = 1;
      for (uint64_t d : t.dims) rep.n_elements *= d;
      rep.bytes = p.bytes.size();
      packed.push_back(std::move(p));
      continue;
    }
    const auto rows = static_cast<int64_t>(t.dims[1]), cols = static_cast<int64_t>(t.dims[0]);
    LOWBIT_ASSIGN_OR_RETURN(LinearQuantized grid, contents.matrix(t, &rep));
    if (grid.rows != rows || grid.cols != cols) return Errorf("{}: a grid of {} x {} for a {} x {} matrix", t.name, grid.rows, grid.cols, rows, cols);
    const std::string prefix = t.source_name.substr(0, t.source_name.size() - std::string_view(".weight").size());
    IntQuantLinear iq = ToCheckpointRows(std::move(grid), t.unpermute_heads);
    LOWBIT_RETURN_IF_ERROR(CheckIntQuantLinear(iq, prefix));
    auto pk = PackQuantizedLinear(prefix, iq, qc);
    if (!pk.ok()) return Errorf("{}: {}", prefix, pk.status().message());
    rep.quantized = true;
    rep.type = fmt::format("int{} g{}", qc.bits, qc.group_size);
    rep.n_elements = static_cast<uint64_t>(rows * cols);
    for (PackedTensor& p : *pk) {
      rep.bytes += p.bytes.size();
      packed.push_back(std::move(p));
    }
    for (const MappedFile* m : plan.mappings) m->DropPages(t.data);
  }

  const fs::path in(input);
  LOWBIT_ASSIGN_OR_RETURN(std::string config, ReadTextFile((in / "config.json").string()));
  LOWBIT_ASSIGN_OR_RETURN(std::string with_q, WithQuantizationConfig(config, qc, (in / "config.json").string()));
  std::vector<std::pair<std::string, std::string>> texts = {{"config.json", with_q}};
  if (!awq) texts.emplace_back("quantize_config.json", GptqQuantizeConfigJson(qc));
  LOWBIT_RETURN_IF_ERROR(WriteFolderFiles(input, output, packed, texts));
  const fs::path out(output);
  report.file_size = fs::file_size(out / "model.safetensors", ec);
  return report;
}

Expected<QuantizeReport> QuantizeToFolder(const QuantizeOptions& o, const FolderQuantOptions& f) {
  const auto start = std::chrono::steady_clock::now();
  LOWBIT_ASSIGN_OR_RETURN(QuantConfig qc, FolderQuantConfig(f, o.damp_percent));
  LOWBIT_ASSIGN_OR_RETURN(LinearQuantSpec spec, FolderGridSpec(f, qc));
  LOWBIT_ASSIGN_OR_RETURN(ConversionPlan plan, PlanFolderInput(o.input, o.output, f.format, o.vocab));

  QuantizeReport report;
  report.mix = fmt::format("{} int{} g{}{}{}", f.format, f.bits, f.group_size, qc.sym ? " sym" : " asym", f.act_order ? " act-order" : "");
  report.method = std::string(QuantizeMethodName(o.method));
  ThreadPool pool(o.threads);
  report.threads = pool.size();

  std::unique_ptr<CalibratedModel> cal;
  if (o.method != QuantizeMethod::kRtn) {
    CalibratedOptions co;
    co.method = o.method;
    co.calib = o.calib;
    co.threads = o.threads;
    co.show_progress = o.show_progress;
    co.int_grid = true;
    co.spec = spec;
    co.damp_percent = o.damp_percent;
    co.awq_duo_scaling = o.awq_duo_scaling;
    co.awq_clip = o.awq_clip;
    co.act_order = f.act_order;
    co.static_groups = f.static_groups;
    LOWBIT_ASSIGN_OR_RETURN(cal, CalibratedModel::Start(plan, std::move(co)));
  }
  FolderContents contents;
  contents.other = [&](const PlannedTensor& t, TensorQuantReport* rep) -> Expected<FolderValues> {
    FolderValues v;
    if (!cal) return v;
    LOWBIT_ASSIGN_OR_RETURN(const CalibratedTensor* c, cal->Get(t.name));
    if (c != nullptr && !c->values.empty()) {  // a norm AWQ rescaled: its new values, in the same dtype
      v.values = c->values;
      rep->note = "AWQ scales folded in";
      cal->Release(t.name);
    }
    return v;
  };
  contents.matrix = [&](const PlannedTensor& t, TensorQuantReport* rep) -> Expected<LinearQuantized> {
    if (cal) {
      LOWBIT_ASSIGN_OR_RETURN(const CalibratedTensor* c, cal->Get(t.name));
      if (c == nullptr || !c->has_grid) return Errorf("{}: the calibrated model has no integer-grid result", t.name);
      LinearQuantized grid = c->grid;
      FillCalibratedStats(*c, rep);
      cal->Release(t.name);
      return grid;
    }
    const auto rows = static_cast<int64_t>(t.dims[1]), cols = static_cast<int64_t>(t.dims[0]);
    std::vector<float> original(static_cast<size_t>(rows * cols));
    LOWBIT_RETURN_IF_ERROR(ConvertTensorRows(t, GgmlType::kF32, std::span<uint8_t>(reinterpret_cast<uint8_t*>(original.data()), original.size() * 4)));
    auto q = QuantizeLinear(original.data(), rows, cols, spec);
    if (!q.ok()) return Errorf("{}: {}", t.name, q.status().message());
    const std::vector<float> deq = q->Dequantize();
    ErrorStats es;
    es.Add(original.data(), deq.data(), rows * cols);
    rep->rmse = es.rmse();
    rep->max_abs_err = es.max_abs_err;
    rep->sqnr_db = es.sqnr_db();
    return std::move(*q);
  };
  LOWBIT_ASSIGN_OR_RETURN(report, WriteQuantizedFolder(plan, o.input, o.output, qc, contents, std::move(report)));
  if (cal) report.calibration = cal->report();
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace lowbit

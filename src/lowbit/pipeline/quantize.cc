#include "lowbit/pipeline/quantize.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>

#include <fmt/format.h>

#include "lowbit/base/mapped_file.h"
#include "lowbit/base/thread_pool.h"
#include "lowbit/formats/gguf_writer.h"
#include "lowbit/formats/imatrix.h"
#include "lowbit/numeric/convert.h"
#include "lowbit/numeric/dequant.h"
#include "lowbit/pipeline/convert.h"
#include "lowbit/pipeline/quant_mix.h"
#include "lowbit/pipeline/row_convert.h"
#include "lowbit/quant/error_stats.h"
#include "lowbit/quant/quantize.h"

namespace lowbit {
namespace {

Expected<GgmlType> WritableType(const std::string& name, const std::string& flag) {
  const GgmlTypeInfo* t = FindGgmlTypeByName(name);
  if (t == nullptr) return Errorf("{}: unknown tensor type '{}'", flag, name);
  if (FromFloatFor(t->type) == nullptr) return Errorf("{}: lowbit cannot write {} tensors yet", flag, t->name);
  return t->type;
}

Status BuildContext(const QuantizeOptions& o, const ConversionPlan& plan, bool has_imatrix, MixContext* ctx) {
  for (const PlannedTensor& t : plan.tensors) {
    if (t.quant != nullptr || t.bnb != nullptr) {
      return Errorf("{} is a GPTQ/AWQ/bitsandbytes quantized linear; convert the folder first (lowbit convert DIR -o F32.gguf "
                    "--outtype f32) and quantize that", t.name);
    }
  }
  ctx->pure = o.pure;
  ctx->has_imatrix = has_imatrix;
  for (const PlannedTensor& t : plan.tensors) {
    if (t.name.find("attn_v.weight") != std::string::npos) ++ctx->n_layers;
  }
  std::string arch;
  for (const GgufKv& kv : plan.kvs) {
    if (kv.key == "general.architecture" && kv.value.AsString()) arch = *kv.value.AsString();
  }
  for (const GgufKv& kv : plan.kvs) {
    if (kv.key == arch + ".attention.head_count" && kv.value.AsUInt()) ctx->n_head = static_cast<int>(*kv.value.AsUInt());
    if (kv.key == arch + ".attention.head_count_kv" && kv.value.AsUInt()) ctx->n_head_kv = static_cast<int>(*kv.value.AsUInt());
  }
  if (ctx->n_head_kv <= 0) ctx->n_head_kv = ctx->n_head;
  for (const std::string& spec : o.tensor_types) {
    const size_t eq = spec.rfind('=');
    if (eq == std::string::npos || eq == 0) return Errorf("--tensor-type '{}': expected REGEX=TYPE", spec);
    LOWBIT_ASSIGN_OR_RETURN(GgmlType t, WritableType(spec.substr(eq + 1), "--tensor-type"));
    try {
      ctx->overrides.emplace_back(std::regex(spec.substr(0, eq)), t);
    } catch (const std::regex_error& e) {
      return Errorf("--tensor-type '{}': invalid regular expression: {}", spec, e.what());
    }
  }
  if (!o.output_tensor_type.empty()) {
    LOWBIT_ASSIGN_OR_RETURN(GgmlType t, WritableType(o.output_tensor_type, "--output-tensor-type"));
    ctx->output_type = t;
  }
  if (!o.token_embedding_type.empty()) {
    LOWBIT_ASSIGN_OR_RETURN(GgmlType t, WritableType(o.token_embedding_type, "--token-embedding-type"));
    ctx->token_embedding_type = t;
  }
  return OkStatus();
}

// Checks an importance matrix against the model: every entry that names a tensor must have one
// value per input column, and at least one entry must name a tensor.
Status CheckImatrix(const Imatrix& im, const ConversionPlan& plan, const std::string& path) {
  int matched = 0;
  for (const ImatrixEntry& e : im.entries) {
    for (const PlannedTensor& t : plan.tensors) {
      if (t.name != e.name) continue;
      ++matched;
      const uint64_t cols = t.dims.empty() ? 1 : t.dims[0];
      if (e.values.size() != cols) {
        return Errorf("{}: entry '{}' has {} values but the tensor's rows have {} columns; this importance "
                      "matrix was made for another model", path, e.name, e.values.size(), cols);
      }
    }
  }
  if (matched == 0) {
    return Errorf("{}: none of its {} entries names a tensor of the model (first: '{}'); this importance "
                  "matrix was made for another model", path, im.entries.size(),
                  im.entries.empty() ? "" : im.entries[0].name);
  }
  return OkStatus();
}

// Quantizes one tensor's rows in parallel into `dst`, filling the error statistics.
Status QuantizeTensor(const PlannedTensor& t, GgmlType type, const float* imatrix, ThreadPool& pool,
                      std::span<uint8_t> dst, TensorQuantReport* rep) {
  const uint64_t cols = t.dims[0];
  const uint64_t rows = t.data.size() / *RowBytes(t.source_type, cols);
  const uint64_t in_row = *RowBytes(t.source_type, cols), out_row = *RowBytes(type, cols);
  ToFloatFn to_f32 = ToFloatFor(t.source_type);
  if (to_f32 == nullptr) return Errorf("cannot read {} values", TypeInfo(t.source_type).name);
  FromFloatFn from_f32 = FromFloatFor(type);
  ToFloatFn back = ToFloatFor(type);
  std::mutex mu;
  ErrorStats plain, weighted;
  pool.ParallelFor(rows, [&](size_t begin, size_t end) {
    std::vector<float> x(cols), y(cols);
    ErrorStats p, w;
    for (size_t r = begin; r < end; ++r) {
      const uint64_t src_r = t.unpermute_heads ? UnpermuteSourceRow(r, rows, t.unpermute_heads) : r;
      to_f32(t.data.data() + src_r * in_row, x.data(), static_cast<int64_t>(cols));
      uint8_t* out = dst.data() + r * out_row;
      from_f32(x.data(), out, static_cast<int64_t>(cols), imatrix);
      back(out, y.data(), static_cast<int64_t>(cols));
      p.Add(x.data(), y.data(), static_cast<int64_t>(cols));
      if (imatrix) w.Add(x.data(), y.data(), static_cast<int64_t>(cols), imatrix);
    }
    std::lock_guard<std::mutex> lock(mu);
    plain.Merge(p);
    weighted.Merge(w);
  }, std::max<size_t>(1, rows / (8 * static_cast<size_t>(pool.size()))));
  rep->rmse = plain.rmse();
  rep->max_abs_err = plain.max_abs_err;
  rep->sqnr_db = plain.sqnr_db();
  if (imatrix) rep->weighted_rmse = weighted.rmse();
  return OkStatus();
}

}  // namespace

std::vector<size_t> LayerOrder(const ConversionPlan& plan) {
  std::vector<size_t> order(plan.tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  auto key = [&](size_t i) -> int64_t {
    const std::string& n = plan.tensors[i].name;
    if (n.starts_with("blk.")) return std::strtoll(n.c_str() + 4, nullptr, 10);
    return n == "output.weight" ? INT64_MAX : -1;
  };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return key(a) < key(b); });
  return order;
}

void FillCalibratedStats(const CalibratedTensor& c, TensorQuantReport* rep) {
  rep->rmse = c.rmse;
  rep->max_abs_err = c.max_abs_err;
  rep->sqnr_db = c.sqnr_db;
  if (!c.note.empty()) rep->note = rep->note.empty() ? c.note : rep->note + "; " + c.note;
}

Expected<std::vector<PlannedType>> PlanQuantizedTypes(const ConversionPlan& plan, const QuantizeOptions& o, bool has_imatrix) {
  LOWBIT_ASSIGN_OR_RETURN(QuantMix mix, ResolveQuantMix(o.type));
  MixContext ctx;
  LOWBIT_RETURN_IF_ERROR(BuildContext(o, plan, has_imatrix, &ctx));
  std::vector<PlannedType> out;
  out.reserve(plan.tensors.size());
  int i_attn_v = 0, i_ffn_down = 0;
  for (const PlannedTensor& t : plan.tensors) {
    PlannedType p{t.source_type};
    const std::string source_type(TypeInfo(t.source_type).name);
    // A mixture of experts' router (ffn_gate_inp) stays F32, as llama.cpp keeps it: its logits choose the experts.
    const bool router = t.name.find("ffn_gate_inp.weight") != std::string::npos;
    const bool two_d = t.dims.size() >= 2 && !router;
    const bool float_src = IsFloatType(t.source_type);
    if (!two_d && float_src) p.type = GgmlType::kF32;  // norms and biases, as `lowbit convert` writes them
    if (two_d && (float_src || o.allow_requantize)) {
      p.type = ChooseTensorType(mix, ctx, t.name, t.dims[0], i_attn_v, i_ffn_down, &p.note);
      if (!float_src && ToFloatFor(t.source_type) == nullptr) {
        return Errorf("{}: tensor '{}' is {}, which lowbit cannot dequantize to re-quantize", o.input, t.name, source_type);
      }
      p.quantized = true;
    } else if (two_d && !float_src) {
      return Errorf("{}: tensor '{}' is already {}; re-quantizing loses quality, pass --allow-requantize to "
                    "do it anyway", o.input, t.name, source_type);
    }
    if (t.name.find("attn_v.weight") != std::string::npos) ++i_attn_v;
    if (t.name.find("ffn_down") != std::string::npos) ++i_ffn_down;
    out.push_back(std::move(p));
  }
  return out;
}

Expected<QuantizeReport> QuantizeModel(const QuantizeOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  LOWBIT_ASSIGN_OR_RETURN(QuantMix mix, ResolveQuantMix(o.type));
  LOWBIT_ASSIGN_OR_RETURN(ConversionPlan plan, PlanConversion(o.input, o.vocab));
  Imatrix im;
  if (!o.imatrix.empty()) {
    LOWBIT_ASSIGN_OR_RETURN(im, LoadImatrix(o.imatrix));
    LOWBIT_RETURN_IF_ERROR(CheckImatrix(im, plan, o.imatrix));
  }
  const bool calibrated = o.method != QuantizeMethod::kRtn;
  LOWBIT_ASSIGN_OR_RETURN(std::vector<PlannedType> planned, PlanQuantizedTypes(plan, o, !o.imatrix.empty() || calibrated));

  auto report = std::make_shared<QuantizeReport>();
  report->mix = mix.name;
  report->file_type = mix.file_type;
  report->used_imatrix = !o.imatrix.empty();
  report->method = std::string(QuantizeMethodName(o.method));
  auto pool = std::make_shared<ThreadPool>(o.threads);
  report->threads = pool->size();
  report->tensors.resize(plan.tensors.size());

  // The type of every tensor first (llama.cpp's rules count attn_v / ffn_down in input order).
  std::vector<GgmlType> types(plan.tensors.size());
  auto type_of = std::make_shared<std::map<std::string, GgmlType>>();
  for (size_t k = 0; k < plan.tensors.size(); ++k) {
    const PlannedTensor& t = plan.tensors[k];
    TensorQuantReport& rep = report->tensors[k];
    rep.name = t.name;
    rep.shape = t.dims;
    rep.source_type = std::string(TypeInfo(t.source_type).name);
    const GgmlType out = planned[k].type;
    rep.quantized = planned[k].quantized;
    rep.note = planned[k].note;
    rep.type = std::string(TypeInfo(out).name);
    types[k] = out;
    (*type_of)[t.name] = out;
  }

  std::shared_ptr<CalibratedModel> cal;
  if (calibrated) {
    CalibratedOptions co;
    co.method = o.method;
    co.calib = o.calib;
    co.threads = o.threads;
    co.show_progress = o.show_progress;
    co.damp_percent = o.damp_percent;
    co.awq_duo_scaling = o.awq_duo_scaling;
    co.awq_clip = o.awq_clip;
    co.ggml_type = [type_of](const std::string& name) { return type_of->at(name); };
    LOWBIT_ASSIGN_OR_RETURN(auto c, CalibratedModel::Start(plan, std::move(co)));
    cal = std::move(c);
  }

  GgufWriter w;
  for (const GgufKv& kv : plan.kvs) w.SetKv(kv.key, kv.value);
  // Calibrated methods compute layer by layer while the file is written: tensors in layer order.
  std::vector<size_t> order(plan.tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  if (calibrated) order = LayerOrder(plan);
  for (size_t k : order) {
    const PlannedTensor& t = plan.tensors[k];
    TensorQuantReport& rep = report->tensors[k];
    const GgmlType out = types[k];
    const ImatrixEntry* entry = rep.quantized && UsesImatrix(out) ? im.Find(t.name) : nullptr;
    const float* imx = entry ? entry->values.data() : nullptr;
    LOWBIT_RETURN_IF_ERROR(w.AddTensor(t.name, out, t.dims, [&t, &plan, &rep, out, imx, pool, cal](std::span<uint8_t> dst) -> Status {
      std::vector<float> out_imx;
      const float* use_imx = imx;
      if (cal) {
        LOWBIT_ASSIGN_OR_RETURN(const CalibratedTensor* c, cal->Get(t.name));
        if (c != nullptr && !c->bytes.empty()) {
          if (c->bytes.size() != dst.size()) return Errorf("{}: calibrated tensor has {} bytes, expected {}", t.name, c->bytes.size(), dst.size());
          std::memcpy(dst.data(), c->bytes.data(), dst.size());
          FillCalibratedStats(*c, &rep);
          cal->Release(t.name);
          return OkStatus();
        }
        if (c != nullptr && !c->values.empty()) {  // a norm AWQ changed
          if (out != GgmlType::kF32 || c->values.size() * 4 != dst.size()) return Errorf("{}: calibrated values do not fit", t.name);
          std::memcpy(dst.data(), c->values.data(), dst.size());
          rep.note = "AWQ scales folded in";
          cal->Release(t.name);
          return OkStatus();
        }
        if (t.name == "output.weight" && rep.quantized && use_imx == nullptr && UsesImatrix(out)) {
          LOWBIT_ASSIGN_OR_RETURN(out_imx, cal->OutputImportance());
          use_imx = out_imx.data();
          rep.note = rep.note.empty() ? "importance from the calibration" : rep.note + "; importance from the calibration";
        }
      }
      Status s = rep.quantized ? QuantizeTensor(t, out, use_imx, *pool, dst, &rep) : ConvertTensorRows(t, out, dst);
      for (const MappedFile* m : plan.mappings) m->DropPages(t.data);
      return s;
    }));
    const GgufTensorInfo& info = w.tensor_info(w.tensor_count() - 1);
    rep.n_elements = info.n_elements;
    rep.bytes = info.n_bytes;
    report->input_tensor_bytes += t.data.size();
  }
  // As llama.cpp: both keys are always written (GGML_QNT_VERSION 2).
  w.SetKv("general.file_type", GgufValue::U32(mix.file_type));
  w.SetKv("general.quantization_version", GgufValue::U32(2));
  LOWBIT_RETURN_IF_ERROR(w.Write(o.output, o.show_progress && !calibrated));
  if (cal) report->calibration = cal->report();
  report->file_size = w.FileSize();
  report->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return *report;
}

nlohmann::json QuantizeReport::ToJson() const {
  nlohmann::json j;
  j["type"] = mix;
  j["file_type"] = file_type;
  j["file_size"] = file_size;
  j["seconds"] = seconds;
  j["threads"] = threads;
  j["imatrix"] = used_imatrix;
  nlohmann::json ts = nlohmann::json::array();
  uint64_t elems = 0, bytes = 0;
  for (const auto& t : tensors) {
    nlohmann::json e = {{"name", t.name}, {"type", t.type}, {"source_type", t.source_type}, {"shape", t.shape},
                        {"bytes", t.bytes}, {"bits_per_weight", t.bits_per_weight()}, {"quantized", t.quantized}};
    if (t.quantized) {
      e["rmse"] = t.rmse;
      e["max_abs_err"] = t.max_abs_err;
      e["sqnr_db"] = std::isfinite(t.sqnr_db) ? nlohmann::json(t.sqnr_db) : nlohmann::json(nullptr);
      if (t.weighted_rmse >= 0) e["weighted_rmse"] = t.weighted_rmse;
    }
    if (!t.note.empty()) e["note"] = t.note;
    ts.push_back(e);
    elems += t.n_elements;
    bytes += t.bytes;
  }
  j["tensors"] = ts;
  j["bits_per_weight"] = elems ? 8.0 * bytes / elems : 0.0;
  return j;
}

std::string QuantizeReport::ToText() const {
  size_t nw = 4;
  for (const auto& t : tensors) nw = std::max(nw, t.name.size());
  std::string s = fmt::format("{:<{}}  {:<7} {:>7} {:>11} {:>11} {:>8}{}\n", "tensor", nw, "type", "bpw", "rmse",
                              "max_abs", "sqnr_dB", used_imatrix ? "  imx_rmse" : "");
  uint64_t elems = 0, bytes = 0;
  for (const auto& t : tensors) {
    elems += t.n_elements;
    bytes += t.bytes;
    if (!t.quantized) {
      s += fmt::format("{:<{}}  {:<7} {:>7.3f} {:>11} {:>11} {:>8}\n", t.name, nw, t.type, t.bits_per_weight(),
                       "copied", "", "");
      continue;
    }
    s += fmt::format("{:<{}}  {:<7} {:>7.3f} {:>11.4e} {:>11.4e} {:>8.2f}", t.name, nw, t.type,
                     t.bits_per_weight(), t.rmse, t.max_abs_err, t.sqnr_db);
    if (t.weighted_rmse >= 0) s += fmt::format("  {:.4e}", t.weighted_rmse);
    if (!t.note.empty()) s += "  (" + t.note + ")";
    s += "\n";
  }
  s += fmt::format("\n{}: {} tensors, {:.4f} bits per weight, {} bytes, {:.2f} s on {} threads\n", mix,
                   tensors.size(), elems ? 8.0 * bytes / elems : 0.0, file_size, seconds, threads);
  return s;
}

}  // namespace lowbit

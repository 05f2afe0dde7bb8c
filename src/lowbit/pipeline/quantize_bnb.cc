#include "lowbit/pipeline/quantize_bnb.h"

#include <chrono>
#include <filesystem>
#include <memory>
#include <set>
#include <span>
#include <vector>

#include <fmt/format.h>

#include "lowbit/base/mapped_file.h"
#include "lowbit/formats/bnb_checkpoint.h"
#include "lowbit/formats/hf.h"
#include "lowbit/formats/imatrix.h"
#include "lowbit/pipeline/calibrated.h"
#include "lowbit/pipeline/convert.h"
#include "lowbit/pipeline/folder_write.h"
#include "lowbit/pipeline/row_convert.h"
#include "lowbit/quant/bnb_quant.h"
#include "lowbit/quant/error_stats.h"

namespace lowbit {
namespace fs = std::filesystem;

namespace {

Expected<StDtype> FloatStDtype(GgmlType t, const std::string& name) {
  switch (t) {
    case GgmlType::kF32: return StDtype::kF32;
    case GgmlType::kF16: return StDtype::kF16;
    case GgmlType::kBF16: return StDtype::kBF16;
    default: return Errorf("tensor '{}' is {}: a bitsandbytes folder is made from F32, F16 or BF16 weights", name, TypeInfo(t).name);
  }
}

std::string TorchDtypeName(GgmlType t) {
  return t == GgmlType::kF16 ? "float16" : t == GgmlType::kBF16 ? "bfloat16" : "float32";
}

// A calibrated tensor's internal NF4 rows (the model's row order) as bitsandbytes' packed codes and
// absmax in the folder's (Hugging Face) row order.
Status CalibratedBnb4(const PlannedTensor& t, const CalibratedTensor& c, GgmlType type, int64_t rows, int64_t cols, int64_t blocksize,
                      uint8_t* packed, std::span<float> absmax) {
  const uint64_t rb = *RowBytes(type, static_cast<uint64_t>(cols));
  if (c.type != type || c.bytes.size() != rb * static_cast<uint64_t>(rows))
    return Errorf("{}: the calibrated tensor is {} with {} bytes, expected {} rows of {}", t.name, TypeInfo(c.type).name, c.bytes.size(), rows,
                  TypeInfo(type).name);
  std::vector<uint8_t> stored(c.bytes.size());
  CopyPermutedRows(c.bytes.data(), stored.data(), rows, rb, t.unpermute_heads, /*to_gguf=*/false);
  UnpackBnb4Rows(type, stored.data(), rows, cols, blocksize, packed, absmax);
  return OkStatus();
}

// The matrix as stored in the folder (Hugging Face row order), as floats.
Expected<std::vector<float>> StoredFloats(const PlannedTensor& t, int64_t rows, int64_t cols) {
  PlannedTensor stored = t;
  stored.unpermute_heads = 0;
  std::vector<float> v(static_cast<size_t>(rows * cols));
  LOWBIT_RETURN_IF_ERROR(ConvertTensorRows(stored, GgmlType::kF32, {reinterpret_cast<uint8_t*>(v.data()), v.size() * 4}));
  return v;
}

}  // namespace

Expected<QuantizeReport> QuantizeToBnbFolder(const QuantizeOptions& o, const BnbFolderOptions& f) {
  const auto start = std::chrono::steady_clock::now();
  const bool int8 = f.method == "int8";
  if (!int8 && f.method != "nf4" && f.method != "fp4") return Errorf("--method {}: --format bnb takes nf4, fp4 or int8", f.method);
  if (!int8 && !IsValidBnbBlockSize(f.block_size))
    return Errorf("--block-size {}: bitsandbytes blocks are a power of two from 32 to 4096", f.block_size);
  if (int8 && f.double_quant) return Errorf("--double-quant is a 4-bit option (nf4, fp4)");
  std::error_code ec;
  if (!fs::is_directory(o.input, ec) || !fs::exists(fs::path(o.input) / "config.json", ec)) {
    return Errorf("{}: --format bnb writes a Hugging Face folder and reads one (config.json, safetensors and the tokenizer "
                  "files it carries over); convert other inputs to a folder first", o.input);
  }
  if (fs::exists(o.output, ec)) return Errorf("{}: already exists; --format bnb writes a new folder", o.output);
  LOWBIT_ASSIGN_OR_RETURN(ConversionPlan plan, PlanConversion(o.input, o.vocab));
  for (const PlannedTensor& t : plan.tensors) {
    if (t.quant != nullptr || t.bnb != nullptr) {
      return Errorf("{}: already quantized ('{}'); quantizing it again rounds twice: convert it with --outtype f32 first", o.input,
                    t.source_name);
    }
  }
  if (plan.input_kind != "huggingface") return Errorf("{}: not a Hugging Face llama folder", o.input);
  const bool search = f.scale_search || !o.imatrix.empty();
  if (search && int8) return Errorf("--scale-search and --imatrix apply to --method nf4|fp4");
  const GgmlType gptq_type = f.block_size == 32 ? GgmlType::kNF4G32 : GgmlType::kNF4G64;
  if (f.gptq) {
    if (f.method != "nf4") return Errorf("--gptq chooses NF4 codes: it takes --method nf4, not {}", f.method);
    if (f.block_size != 32 && f.block_size != 64) return Errorf("--gptq takes --block-size 32 or 64 (got {})", f.block_size);
    if (!o.imatrix.empty()) return Errorf("--gptq weights each block's scale by the calibration's Hessian: drop --imatrix");
    if (o.calib.text_path.empty()) return Errorf("--gptq needs calibration text: --calib FILE");
    for (const PlannedTensor& t : plan.tensors) {
      if (t.name.starts_with("blk.") && t.dims.size() == 2 && t.dims[0] % static_cast<uint64_t>(f.block_size) != 0)
        return Errorf("{}: --gptq needs rows that are a multiple of --block-size {} ({} has {} columns)", o.input, f.block_size, t.name, t.dims[0]);
    }
  }
  Imatrix im;
  if (!o.imatrix.empty()) {
    LOWBIT_ASSIGN_OR_RETURN(im, LoadImatrix(o.imatrix));
  }

  BnbConfig bc;
  bc.load_in_4bit = !int8;
  bc.load_in_8bit = int8;
  bc.quant_type = f.method == "fp4" ? Bnb4Type::kFp4 : Bnb4Type::kNf4;
  bc.double_quant = f.double_quant;
  bc.int8_threshold = f.int8_threshold;
  QuantizeReport report;
  report.method = f.method;
  report.mix = int8 ? "bnb int8 (LLM.int8)"
                    : fmt::format("bnb {} block {}{}{}", f.method, f.block_size, f.double_quant ? " double-quant" : "",
                                  f.gptq               ? " gptq"
                                  : !o.imatrix.empty() ? " imatrix scale search"
                                  : f.scale_search     ? " scale search"
                                                       : "");
  report.used_imatrix = !o.imatrix.empty();
  std::unique_ptr<CalibratedModel> cal;
  if (f.gptq) {
    report.method = "nf4 gptq";
    CalibratedOptions co;
    co.method = QuantizeMethod::kGptq;
    co.calib = o.calib;
    co.threads = o.threads;
    co.show_progress = o.show_progress;
    co.damp_percent = o.damp_percent;
    co.ggml_type = [gptq_type](const std::string&) { return gptq_type; };
    LOWBIT_ASSIGN_OR_RETURN(cal, CalibratedModel::Start(plan, std::move(co)));
    report.threads = cal->threads();
  }
  std::vector<PackedTensor> packed;
  std::set<std::string> written_source;  // a tied classifier shares the embedding's bytes
  report.tensors.resize(plan.tensors.size());
  std::vector<size_t> order(plan.tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  if (cal) order = LayerOrder(plan);  // GPTQ computes layer by layer
  for (size_t k : order) {
    const PlannedTensor& t = plan.tensors[k];
    TensorQuantReport& rep = report.tensors[k];
    rep.name = t.name;
    rep.shape = t.dims;
    rep.source_type = std::string(TypeInfo(t.source_type).name);
    rep.type = rep.source_type;
    report.input_tensor_bytes += t.data.size();
    if (t.source_name.empty()) return Errorf("{}: tensor '{}' has no Hugging Face name", o.input, t.name);
    LOWBIT_ASSIGN_OR_RETURN(StDtype dt, FloatStDtype(t.source_type, t.name));
    // The decoder's linears (a llama plan's only 2-D tensors under blk.) are quantized; the rest
    // (embedding, norms, lm_head: transformers' default skip list) is copied.
    const bool matrix = t.name.starts_with("blk.") && t.dims.size() == 2;
    if (!matrix) {
      if (!written_source.insert(t.source_name).second) {
        rep.note = "tied to " + t.source_name;
        continue;
      }
      PackedTensor p{t.source_name, dt, std::vector<uint64_t>(t.dims.rbegin(), t.dims.rend()), {t.data.begin(), t.data.end()}};
      rep.n_elements = p.bytes.size() / StDtypeSize(dt);
      rep.bytes = p.bytes.size();
      packed.push_back(std::move(p));
      continue;
    }
    const auto rows = static_cast<int64_t>(t.dims[1]), cols = static_cast<int64_t>(t.dims[0]);
    LOWBIT_ASSIGN_OR_RETURN(std::vector<float> w, StoredFloats(t, rows, cols));
    const std::string prefix = t.source_name.substr(0, t.source_name.size() - std::string_view(".weight").size());
    std::vector<float> back(w.size());
    std::vector<PackedTensor> tensors;
    if (int8) {
      std::vector<uint8_t> q(w.size());
      const std::vector<float> scb = QuantizeInt8Rows(w.data(), rows, cols, reinterpret_cast<int8_t*>(q.data()));
      DequantizeInt8Rows(reinterpret_cast<const int8_t*>(q.data()), scb, rows, cols, back.data());
      tensors = Bnb8LinearTensors(prefix, rows, cols, std::move(q), scb);
      rep.type = "bnb int8";
    } else {
      const int64_t n = rows * cols;
      std::vector<uint8_t> codes(static_cast<size_t>((n + 1) / 2));
      std::vector<float> absmax(static_cast<size_t>(BnbBlockCount(n, f.block_size)));
      if (cal) {
        LOWBIT_ASSIGN_OR_RETURN(const CalibratedTensor* c, cal->Get(t.name));
        if (c == nullptr) return Errorf("{}: the calibrated model has no result", t.name);
        LOWBIT_RETURN_IF_ERROR(CalibratedBnb4(t, *c, gptq_type, rows, cols, f.block_size, codes.data(), absmax));
        if (!c->note.empty()) rep.note = c->note;
        cal->Release(t.name);
      } else if (search) {
        const float* weights = nullptr;
        if (!o.imatrix.empty()) {
          const ImatrixEntry* e = im.Find(t.name);
          if (e == nullptr) return Errorf("{}: has no entry for tensor '{}'", o.imatrix, t.name);
          if (static_cast<int64_t>(e->values.size()) != cols)
            return Errorf("{}: entry '{}' has {} values, the tensor {} columns", o.imatrix, t.name, e->values.size(), cols);
          weights = e->values.data();
        }
        QuantizeBnb4Searched(bc.quant_type, w.data(), n, f.block_size, weights, cols, codes.data(), absmax.data());
      } else {
        QuantizeBnb4(bc.quant_type, w.data(), n, f.block_size, codes.data(), absmax.data());
      }
      Bnb4State st;
      st.type = bc.quant_type;
      st.blocksize = f.block_size;
      st.dtype = TorchDtypeName(t.source_type);
      st.shape = {rows, cols};
      Bnb4Nested nested;
      std::vector<float> used = absmax;  // what the folder decodes to
      if (f.double_quant) {
        BnbNestedAbsmax dq = DoubleQuantizeAbsmax(absmax);
        st.nested = true;
        st.nested_blocksize = kBnbNestedBlock;
        st.nested_offset = dq.offset;
        DecodeNestedAbsmax(dq.q, dq.nested_absmax, dq.offset, used);
        nested.q = std::move(dq.q);
        nested.nested_absmax = std::move(dq.nested_absmax);
      }
      DequantizeBnb4(bc.quant_type, codes.data(), used, n, f.block_size, back.data());
      tensors = Bnb4LinearTensors(prefix, st, std::move(codes), absmax, f.double_quant ? &nested : nullptr);
      rep.type = fmt::format("bnb {}", f.method);
    }
    ErrorStats es;
    es.Add(w.data(), back.data(), rows * cols);
    rep.rmse = es.rmse();
    rep.max_abs_err = es.max_abs_err;
    rep.sqnr_db = es.sqnr_db();
    rep.quantized = true;
    rep.n_elements = static_cast<uint64_t>(rows * cols);
    for (PackedTensor& p : tensors) {
      rep.bytes += p.bytes.size();
      packed.push_back(std::move(p));
    }
    for (const MappedFile* m : plan.mappings) m->DropPages(t.data);
  }
  const fs::path in(o.input);
  LOWBIT_ASSIGN_OR_RETURN(std::string config, ReadTextFile((in / "config.json").string()));
  LOWBIT_ASSIGN_OR_RETURN(std::string with_q, WithBnbQuantizationConfig(config, bc, (in / "config.json").string()));
  LOWBIT_RETURN_IF_ERROR(WriteFolderFiles(o.input, o.output, packed, {{"config.json", with_q}}));
  report.file_size = fs::file_size(fs::path(o.output) / "model.safetensors", ec);
  if (cal) report.calibration = cal->report();
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace lowbit

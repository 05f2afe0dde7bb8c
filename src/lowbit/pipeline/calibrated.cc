#include "lowbit/pipeline/calibrated.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "lowbit/base/check.h"
#include "lowbit/base/progress.h"
#include "lowbit/formats/gguf_vocab.h"
#include "lowbit/kernels/matvec.h"
#include "lowbit/numeric/dequant.h"
#include "lowbit/pipeline/model_source.h"
#include "lowbit/quant/awq.h"
#include "lowbit/quant/error_stats.h"
#include "lowbit/quant/ggml_grid.h"
#include "lowbit/quant/gptq.h"
#include "lowbit/quant/gptq_ggml.h"
#include "lowbit/quant/hessian.h"
#include "lowbit/quant/quantize.h"

namespace lowbit {
namespace {

inline size_t Z(int64_t v) { return static_cast<size_t>(v); }

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Quantizes rows of w into `type` and back: bytes and the dequantized values. `importance` [cols]
// (or nullptr) goes to the type's quantizer.
Status RoundTripRows(GgmlType type, const float* w, int64_t rows, int64_t cols, const float* importance,
                     std::vector<uint8_t>* bytes, float* back, ThreadPool* pool) {
  FromFloatFn from = FromFloatFor(type);
  ToFloatFn to = ToFloatFor(type);
  const auto row_bytes = RowBytes(type, static_cast<uint64_t>(cols));
  if (from == nullptr || to == nullptr || !row_bytes) {
    return Errorf("cannot quantize a {}-column matrix to {}", cols, TypeInfo(type).name);
  }
  std::vector<uint8_t> local;
  std::vector<uint8_t>& out = bytes != nullptr ? *bytes : local;
  out.resize(Z(rows) * *row_bytes);
  pool->ParallelFor(Z(rows), [&](size_t begin, size_t end) {
    for (size_t r = begin; r < end; ++r) {
      uint8_t* dst = out.data() + r * *row_bytes;
      from(w + r * Z(cols), dst, cols, importance);
      to(dst, back + r * Z(cols), cols);
    }
  });
  return OkStatus();
}

void ScaleColumns(float* w, int64_t rows, int64_t cols, const float* s, bool divide) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = w + r * cols;
    for (int64_t c = 0; c < cols; ++c) row[c] = divide ? row[c] / s[c] : row[c] * s[c];
  }
}

void ScaleRows(float* w, int64_t rows, int64_t cols, const float* s) {  // row r /= s[r]
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) w[r * cols + c] /= s[r];
  }
}

// Per-channel statistics of one input of a layer over every calibration token: AWQ's mean |x|, the
// mean x^2 (a ggml quantizer's importance), every (step)-th token (the clip search's sample), and,
// when asked, every token.
struct InputStats {
  InputStats(int64_t w, int64_t every, bool keep) : act(w), sq(Z(w), 0.0), width(w), step(every), keep_all(keep) {}
  void Add(const float* x, int64_t n, int64_t token0) {
    act.AddBatch(x, n, width);
    for (int64_t t = 0; t < n; ++t) {
      const float* row = x + t * width;
      for (int64_t c = 0; c < width; ++c) sq[Z(c)] += static_cast<double>(row[c]) * row[c];
      if (Sampled(token0 + t)) sampled.insert(sampled.end(), row, row + width);
    }
    if (keep_all) all.insert(all.end(), x, x + n * width);
    count += n;
  }
  // mean x^2 of the inputs divided by s (the scaled inputs' importance); s may be null.
  std::vector<float> Importance(const float* s) const {
    std::vector<float> imp(Z(width));
    for (int64_t c = 0; c < width; ++c) {
      const double v = count ? sq[Z(c)] / static_cast<double>(count) : 0.0;
      imp[Z(c)] = static_cast<float>(s ? v / (static_cast<double>(s[c]) * s[c]) : v);
    }
    return imp;
  }
  int64_t n_sampled() const { return static_cast<int64_t>(sampled.size()) / width; }
  // One token of every `step`, at a different place in each stretch of `step` (37 g mod step in
  // stretch g). AutoAWQ takes every step-th token of its calibration stream, whose chunks do not
  // start with BOS; here every sample starts with BOS, and the first token of each stretch fell on
  // the same positions of every sample: with 128 x 256 tokens (step 64) a quarter of the clip
  // search's tokens were position 0, all the same BOS vector, and with 512 x 256 (step 256) all of
  // them (w4 g128 KLD 0.0174, against RTN's 0.0108; docs/QUALITY.md).
  bool Sampled(int64_t token) const { return token % step == (token / step * 37) % step; }
  AwqActStats act;
  std::vector<double> sq;
  std::vector<float> sampled, all;
  int64_t width, step, count = 0;
  bool keep_all;
};

}  // namespace

Expected<QuantizeMethod> ParseQuantizeMethod(std::string_view name) {
  if (name == "rtn") return QuantizeMethod::kRtn;
  if (name == "gptq") return QuantizeMethod::kGptq;
  if (name == "awq") return QuantizeMethod::kAwq;
  return Errorf("--method '{}': expected rtn, gptq or awq", name);
}

std::string_view QuantizeMethodName(QuantizeMethod m) {
  switch (m) {
    case QuantizeMethod::kRtn: return "rtn";
    case QuantizeMethod::kGptq: return "gptq";
    case QuantizeMethod::kAwq: return "awq";
  }
  return "?";
}

Expected<std::unique_ptr<CalibratedModel>> CalibratedModel::Start(const ConversionPlan& plan, CalibratedOptions options) {
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<CalibratedModel> cm(new CalibratedModel());
  cm->o_ = std::move(options);
  LOWBIT_ASSIGN_OR_RETURN(GgufFile file, MaterializePlan(plan, "calibration model"));
  cm->file_ = std::make_unique<GgufFile>(std::move(file));
  LOWBIT_ASSIGN_OR_RETURN(LlamaModel model, LlamaModel::Load(*cm->file_));
  cm->model_ = std::make_unique<LlamaModel>(std::move(model));
  LOWBIT_ASSIGN_OR_RETURN(Vocab vocab, VocabFromGguf(*cm->file_));
  CalibrationOptions co = cm->o_.calib;
  co.seqlen = std::min(co.seqlen, cm->model_->config().n_ctx_train);
  if (co.text_path.empty()) return Errorf("--method {} needs calibration text: pass --calib FILE", QuantizeMethodName(cm->o_.method));
  LOWBIT_ASSIGN_OR_RETURN(auto samples, DrawCalibrationSamples(vocab, co));
  if (cm->o_.int_grid) {
    for (const LlamaModel::Layer& L : cm->model_->layers) {
      for (const WeightView* w : {&L.wq, &L.wo, &L.down}) {
        Status s = ValidateSpec(cm->o_.spec, w->cols);
        if (!s.ok()) return Errorf("{} (a layer matrix has {} columns)", s.message(), w->cols);
      }
    }
  }
  cm->pool_ = std::make_unique<ThreadPool>(cm->o_.threads);
  cm->cal_ = std::make_unique<LayerCalibrator>(cm->model_.get(), std::move(samples), cm->pool_.get());
  cm->report_.tokens = cm->cal_->n_tokens();
  const size_t stages = Z(cm->n_layers()) * (cm->o_.method == QuantizeMethod::kAwq ? 3 : 4);
  cm->progress_ = std::make_unique<Progress>(fmt::format("{} layer by layer", QuantizeMethodName(cm->o_.method)), stages, 0,
                                             cm->o_.show_progress);
  cm->report_.seconds_total += Seconds(t0);
  return cm;
}

CalibratedModel::~CalibratedModel() = default;

int64_t CalibratedModel::n_layers() const { return model_->config().n_layer; }

std::string CalibratedModel::Name(int64_t l, const char* what) const { return fmt::format("blk.{}.{}.weight", l, what); }

void CalibratedModel::Stage(int64_t l, const char* what) {
  progress_->Update(Z(stages_done_++), 0, fmt::format("layer {}/{} {}", l + 1, n_layers(), what));
}

Expected<const CalibratedTensor*> CalibratedModel::Get(const std::string& name) {
  if (!name.starts_with("blk.")) return nullptr;
  const int64_t l = std::strtoll(name.c_str() + 4, nullptr, 10);
  if (l < 0 || l >= n_layers()) return nullptr;
  while (next_layer_ <= l) {
    const auto t0 = std::chrono::steady_clock::now();
    LOWBIT_RETURN_IF_ERROR(ProcessLayer(next_layer_));
    report_.seconds_total += Seconds(t0);
    ++next_layer_;
    if (next_layer_ == n_layers()) progress_->Finish();
  }
  auto it = results_.find(name);
  return it == results_.end() ? nullptr : &it->second;
}

void CalibratedModel::Release(const std::string& name) { results_.erase(name); }

Status CalibratedModel::ProcessLayer(int64_t l) {
  switch (o_.method) {
    case QuantizeMethod::kGptq: return GptqLayer(l);
    case QuantizeMethod::kAwq: return AwqLayer(l);
    case QuantizeMethod::kRtn: break;
  }
  return Errorf("method {} needs no calibration", QuantizeMethodName(o_.method));
}

int CalibratedModel::threads() const { return pool_->size(); }

Status CalibratedModel::FinishMatrix(int64_t l, LayerMatrix m, const std::vector<float>& original,
                                     std::vector<float>* hessian, const float* importance) {
  const WeightView& v = LayerMatrixView(model_->layers[l], m);
  const int64_t rows = v.rows, cols = v.cols;
  std::span<float> w = cal_->Matrix(m);
  const std::string name = Name(l, LayerMatrixName(m));
  CalibratedTensor res;
  const auto t0 = std::chrono::steady_clock::now();
  if (o_.int_grid) {
    res.has_grid = true;
    if (o_.method == QuantizeMethod::kGptq) {
      GptqOptions go{.quant = o_.spec, .damp_percent = o_.damp_percent, .act_order = o_.act_order, .static_groups = o_.static_groups};
      LOWBIT_ASSIGN_OR_RETURN(GptqResult r, GptqQuantize(w.data(), rows, cols, std::move(*hessian), go, pool_.get(), name.c_str()));
      report_.flops_factor += r.stats.flops_factor;
      report_.flops_update += r.stats.flops_update;
      report_.damp_raises += r.stats.damp_raises;
      if (r.stats.damp_raises > 0) res.note = fmt::format("damp raised to {:.3g}", r.stats.damp_percent);
      res.grid = std::move(r.q);
    } else {
      LOWBIT_ASSIGN_OR_RETURN(res.grid, QuantizeLinear(w.data(), rows, cols, o_.spec));
    }
    const std::vector<float> deq = res.grid.Dequantize();
    std::copy(deq.begin(), deq.end(), w.begin());
  } else {
    res.type = o_.ggml_type(name);
    if (o_.method == QuantizeMethod::kGptq && GgmlGridFor(res.type) != nullptr) {
      GptqGgmlOptions go{.type = res.type, .damp_percent = o_.damp_percent};
      LOWBIT_ASSIGN_OR_RETURN(GptqGgmlResult r, GptqQuantizeGgml(w.data(), rows, cols, std::move(*hessian), go, pool_.get(), name.c_str()));
      report_.flops_factor += r.stats.flops_factor;
      report_.flops_update += r.stats.flops_update;
      report_.damp_raises += r.stats.damp_raises;
      if (r.stats.damp_raises > 0) res.note = fmt::format("damp raised to {:.3g}", r.stats.damp_percent);
      res.bytes = std::move(r.data);
      ToFloatFn to = ToFloatFor(res.type);
      const uint64_t rb = *RowBytes(res.type, static_cast<uint64_t>(cols));
      for (int64_t row = 0; row < rows; ++row) to(res.bytes.data() + Z(row) * rb, w.data() + row * cols, cols);
    } else {
      // No grid row for the type (or not GPTQ): the type's own quantizer, with the importance of
      // the inputs (GPTQ: diag H / 2, the mean x^2).
      std::vector<float> imp;
      if (importance == nullptr && hessian != nullptr && !hessian->empty()) {
        imp.resize(Z(cols));
        for (int64_t c = 0; c < cols; ++c) imp[Z(c)] = 0.5f * (*hessian)[Z(c * cols + c)];
        importance = imp.data();
        if (o_.method == QuantizeMethod::kGptq) res.note = fmt::format("{} has no GPTQ grid: its quantizer with the Hessian's diagonal", TypeInfo(res.type).name);
      }
      const std::vector<float> in(w.begin(), w.end());
      LOWBIT_RETURN_IF_ERROR(RoundTripRows(res.type, in.data(), rows, cols, UsesImatrix(res.type) ? importance : nullptr, &res.bytes, w.data(), pool_.get()));
    }
  }
  report_.seconds_quantize += Seconds(t0);
  ErrorStats st;
  st.Add(original.data(), w.data(), static_cast<int64_t>(original.size()));
  res.rmse = st.rmse();
  res.max_abs_err = st.max_abs_err;
  res.sqnr_db = st.sqnr_db();
  results_[name] = std::move(res);
  return OkStatus();
}

Status CalibratedModel::GptqLayer(int64_t l) {
  cal_->MakeLayerFloat(l);
  auto stage = [&](Sublayer part, std::vector<LayerMatrix> ms) -> Status {
    Stage(l, LayerMatrixName(ms[0]));
    const int64_t width = LayerMatrixView(model_->layers[l], ms[0]).cols;
    HessianAccumulator acc(width);
    double stats_s = 0;
    const auto t0 = std::chrono::steady_clock::now();
    const LayerMatrix first[] = {ms[0]};
    cal_->Pass(l, part, first, [&](LayerMatrix, const float* x, int64_t n, int64_t w) {
      const auto t1 = std::chrono::steady_clock::now();
      acc.AddBatch(x, n, w, pool_.get());
      stats_s += Seconds(t1);
    });
    report_.flops_hessian += acc.flops();
    const auto t2 = std::chrono::steady_clock::now();
    std::vector<float> h = acc.Finish(pool_.get());
    report_.seconds_stats += stats_s + Seconds(t2);
    report_.seconds_forward += Seconds(t0) - stats_s;
    for (size_t i = 0; i < ms.size(); ++i) {
      std::span<float> w = cal_->Matrix(ms[i]);
      const std::vector<float> original(w.begin(), w.end());
      std::vector<float> hi = i + 1 < ms.size() ? h : std::move(h);
      LOWBIT_RETURN_IF_ERROR(FinishMatrix(l, ms[i], original, &hi, nullptr));
    }
    return OkStatus();
  };
  LOWBIT_RETURN_IF_ERROR(stage(Sublayer::kAttention, {LayerMatrix::kQ, LayerMatrix::kK, LayerMatrix::kV}));
  LOWBIT_RETURN_IF_ERROR(stage(Sublayer::kAttention, {LayerMatrix::kO}));
  auto t0 = std::chrono::steady_clock::now();
  cal_->Advance(l, Sublayer::kAttention);
  report_.seconds_forward += Seconds(t0);
  LOWBIT_RETURN_IF_ERROR(stage(Sublayer::kFfn, {LayerMatrix::kGate, LayerMatrix::kUp}));
  LOWBIT_RETURN_IF_ERROR(stage(Sublayer::kFfn, {LayerMatrix::kDown}));
  t0 = std::chrono::steady_clock::now();
  cal_->Advance(l, Sublayer::kFfn);
  report_.seconds_forward += Seconds(t0);
  cal_->FreeLayer();
  return OkStatus();
}

Status CalibratedModel::AwqLayer(int64_t l) {
  const int64_t E = model_->config().n_embd;
  cal_->MakeLayerFloat(l);
  LlamaModel::Layer& L = model_->layers[l];
  auto rows_of = [&](LayerMatrix m) { return LayerMatrixView(L, m).rows; };
  auto cols_of = [&](LayerMatrix m) { return LayerMatrixView(L, m).cols; };
  const int64_t ntok = cal_->n_tokens(), seqlen = cal_->seqlen();
  const int64_t step = std::max<int64_t>(1, ntok / 512);  // AutoAWQ's clip sample: every step-th token
  // AutoAWQ folds v's scales into o only when the two weights have the same shape (no GQA).
  const bool v_to_o = L.wv.rows == L.wo.rows && L.wv.cols == L.wo.cols;
  InputStats in_qkv(E, step, false), in_o(cols_of(LayerMatrix::kO), step, v_to_o), in_gu(E, step, false),
      in_down(cols_of(LayerMatrix::kDown), step, true);
  std::vector<float> fp_attn(Z(ntok * E)), fp_ffn(Z(ntok * E));
  auto t0 = std::chrono::steady_clock::now();

  // 1. The float layer: statistics, the blocks' float outputs, and the hidden states at each step.
  Stage(l, "float pass");
  const std::vector<float> h0 = cal_->hidden();
  {
    const LayerMatrix want[] = {LayerMatrix::kQ, LayerMatrix::kO};
    int64_t sample = 0;
    cal_->Pass(l, Sublayer::kAttention, want, [&](LayerMatrix m, const float* x, int64_t n, int64_t) {
      (m == LayerMatrix::kQ ? in_qkv : in_o).Add(x, n, sample * seqlen);
    }, [&](int64_t s, const float* out) {
      std::copy(out, out + seqlen * E, fp_attn.begin() + s * seqlen * E);
      sample = s + 1;
    });
  }
  cal_->Advance(l, Sublayer::kAttention);
  const std::vector<float> h1 = cal_->hidden();
  {
    const LayerMatrix want[] = {LayerMatrix::kGate, LayerMatrix::kDown};
    int64_t sample = 0;
    cal_->Pass(l, Sublayer::kFfn, want, [&](LayerMatrix m, const float* x, int64_t n, int64_t) {
      (m == LayerMatrix::kGate ? in_gu : in_down).Add(x, n, sample * seqlen);
    }, [&](int64_t s, const float* out) {
      std::copy(out, out + seqlen * E, fp_ffn.begin() + s * seqlen * E);
      sample = s + 1;
    });
  }
  cal_->Advance(l, Sublayer::kFfn);
  std::vector<float> h2 = cal_->hidden();  // the next layer's input: the float layer's output (AutoAWQ)
  report_.seconds_forward += Seconds(t0);

  // 2. Scale searches, each on the float weights of the layer.
  Stage(l, "scale search");
  t0 = std::chrono::steady_clock::now();
  std::array<std::vector<float>, 7> orig;
  for (LayerMatrix m : kLayerMatrices) {
    std::span<float> w = cal_->Matrix(m);
    orig[static_cast<int>(m)].assign(w.begin(), w.end());
  }
  const int64_t wgroup = o_.int_grid ? (o_.spec.granularity == QuantGranularity::kPerGroup ? o_.spec.group_size : 0) : 32;
  // Q(W * s) / s into the calibrator's buffer of m.
  auto pseudo = [&](LayerMatrix m, const float* s, const InputStats& in) -> Status {
    const int64_t rows = rows_of(m), cols = cols_of(m);
    const float* w = orig[static_cast<int>(m)].data();
    float* out = cal_->Matrix(m).data();
    if (o_.int_grid) return AwqScaledPseudoQuantize(w, rows, cols, s, o_.spec, out);
    std::vector<float> ws(w, w + rows * cols);
    ScaleColumns(ws.data(), rows, cols, s, false);
    const std::vector<float> imp = in.Importance(s);
    const GgmlType type = o_.ggml_type(Name(l, LayerMatrixName(m)));
    LOWBIT_RETURN_IF_ERROR(RoundTripRows(type, ws.data(), rows, cols, UsesImatrix(type) ? imp.data() : nullptr, nullptr, out, pool_.get()));
    ScaleColumns(out, rows, cols, s, true);
    return OkStatus();
  };
  auto restore = [&](LayerMatrix m) {
    const std::vector<float>& o = orig[static_cast<int>(m)];
    std::copy(o.begin(), o.end(), cal_->Matrix(m).begin());
  };
  auto weight_mean = [&](std::initializer_list<LayerMatrix> ms, std::vector<float>* w_mean) -> Status {
    std::vector<AwqWeight> ws;
    const int64_t cols = cols_of(*ms.begin());
    for (LayerMatrix m : ms) ws.push_back({orig[static_cast<int>(m)].data(), rows_of(m)});
    w_mean->resize(Z(cols));
    return AwqWeightMean(ws, cols, wgroup > 0 ? wgroup : cols, w_mean->data());
  };
  // A block's search: loss = mean squared difference of the block output over every token.
  auto search_block = [&](Sublayer part, std::initializer_list<LayerMatrix> ms, const InputStats& in,
                          const std::vector<float>& h_in, const std::vector<float>& fp_out) -> Expected<std::vector<float>> {
    std::vector<float> w_mean;
    LOWBIT_RETURN_IF_ERROR(weight_mean(ms, &w_mean));
    const std::vector<float> x_mean = in.act.Mean();
    cal_->SetHidden(h_in);
    Status err = OkStatus();
    LOWBIT_ASSIGN_OR_RETURN(AwqScaleSearch best, AwqSearchScales(x_mean.data(), w_mean.data(), in.width, o_.awq_duo_scaling,
        [&](const float* s) -> double {
          for (LayerMatrix m : ms) {
            Status st = pseudo(m, s, in);
            if (!st.ok()) err = st;
          }
          double sum = 0;
          cal_->Pass(l, part, {}, [](LayerMatrix, const float*, int64_t, int64_t) {}, [&](int64_t smp, const float* out) {
            const float* ref = fp_out.data() + smp * seqlen * E;
            for (int64_t i = 0; i < seqlen * E; ++i) sum += static_cast<double>(out[i] - ref[i]) * (out[i] - ref[i]);
          });
          for (LayerMatrix m : ms) restore(m);
          return sum / static_cast<double>(ntok * E);
        }));
    LOWBIT_RETURN_IF_ERROR(err);
    return best.scales;
  };
  // A single matrix's search (o after v, down after up): loss over its own outputs.
  MatMulScratch scratch;
  auto search_linear = [&](LayerMatrix m, const InputStats& in) -> Expected<std::vector<float>> {
    std::vector<float> w_mean;
    LOWBIT_RETURN_IF_ERROR(weight_mean({m}, &w_mean));
    const std::vector<float> x_mean = in.act.Mean();
    const int64_t rows = rows_of(m), cols = cols_of(m);
    auto product = [&](const float* w, std::vector<float>* y) {
      y->resize(Z(ntok * rows));
      MatMul(MatMulArgs{.type = GgmlType::kF32, .w = reinterpret_cast<const uint8_t*>(w), .rows = rows, .cols = cols,
                        .x = in.all.data(), .batch = ntok, .y = y->data()}, pool_.get(), &scratch);
    };
    std::vector<float> ref, y;
    product(orig[static_cast<int>(m)].data(), &ref);
    Status err = OkStatus();
    LOWBIT_ASSIGN_OR_RETURN(AwqScaleSearch best, AwqSearchScales(x_mean.data(), w_mean.data(), cols, o_.awq_duo_scaling,
        [&](const float* s) -> double {
          Status st = pseudo(m, s, in);
          if (!st.ok()) err = st;
          product(cal_->Matrix(m).data(), &y);
          restore(m);
          double sum = 0;
          for (size_t i = 0; i < y.size(); ++i) sum += static_cast<double>(y[i] - ref[i]) * (y[i] - ref[i]);
          return sum / static_cast<double>(y.size());
        }));
    LOWBIT_RETURN_IF_ERROR(err);
    return best.scales;
  };
  LOWBIT_ASSIGN_OR_RETURN(std::vector<float> s_qkv, search_block(Sublayer::kAttention, {LayerMatrix::kQ, LayerMatrix::kK, LayerMatrix::kV}, in_qkv, h0, fp_attn));
  std::vector<float> s_o;
  if (v_to_o) {
    LOWBIT_ASSIGN_OR_RETURN(s_o, search_linear(LayerMatrix::kO, in_o));
  }
  LOWBIT_ASSIGN_OR_RETURN(std::vector<float> s_gu, search_block(Sublayer::kFfn, {LayerMatrix::kGate, LayerMatrix::kUp}, in_gu, h1, fp_ffn));
  LOWBIT_ASSIGN_OR_RETURN(std::vector<float> s_down, search_linear(LayerMatrix::kDown, in_down));
  cal_->SetHidden(std::move(h2));
  report_.seconds_quantize += Seconds(t0);

  // 3. Fold the scales: into the norms (new values for the file), v's and up's rows, the columns.
  Stage(l, "clip and quantize");
  t0 = std::chrono::steady_clock::now();
  auto norm = [&](const WeightView& v, const std::vector<float>& s, const char* what) {
    CalibratedTensor t;
    const float* w = reinterpret_cast<const float*>(v.data);
    t.values.resize(Z(v.cols));
    for (int64_t c = 0; c < v.cols; ++c) t.values[Z(c)] = w[c] / s[Z(c)];
    t.type = GgmlType::kF32;
    results_[Name(l, what)] = std::move(t);
  };
  norm(L.attn_norm, s_qkv, "attn_norm");
  norm(L.ffn_norm, s_gu, "ffn_norm");
  auto mat = [&](LayerMatrix m) { return cal_->Matrix(m).data(); };
  for (LayerMatrix m : {LayerMatrix::kQ, LayerMatrix::kK, LayerMatrix::kV}) ScaleColumns(mat(m), rows_of(m), cols_of(m), s_qkv.data(), false);
  if (v_to_o) {
    ScaleRows(mat(LayerMatrix::kV), rows_of(LayerMatrix::kV), cols_of(LayerMatrix::kV), s_o.data());
    ScaleColumns(mat(LayerMatrix::kO), rows_of(LayerMatrix::kO), cols_of(LayerMatrix::kO), s_o.data(), false);
  }
  for (LayerMatrix m : {LayerMatrix::kGate, LayerMatrix::kUp}) ScaleColumns(mat(m), rows_of(m), cols_of(m), s_gu.data(), false);
  ScaleRows(mat(LayerMatrix::kUp), rows_of(LayerMatrix::kUp), cols_of(LayerMatrix::kUp), s_down.data());
  ScaleColumns(mat(LayerMatrix::kDown), rows_of(LayerMatrix::kDown), cols_of(LayerMatrix::kDown), s_down.data(), false);

  // 4. The clip search (integer grid; not q and k), on the scaled inputs' sample, then quantization.
  struct Input {
    const InputStats* in;
    const float* s;  // the scales the input is divided by, or null
  };
  auto input_of = [&](LayerMatrix m) -> Input {
    switch (m) {
      case LayerMatrix::kQ: case LayerMatrix::kK: case LayerMatrix::kV: return {&in_qkv, s_qkv.data()};
      case LayerMatrix::kO: return {&in_o, v_to_o ? s_o.data() : nullptr};
      case LayerMatrix::kGate: case LayerMatrix::kUp: return {&in_gu, s_gu.data()};
      case LayerMatrix::kDown: return {&in_down, s_down.data()};
    }
    return {&in_qkv, nullptr};
  };
  for (LayerMatrix m : kLayerMatrices) {
    const Input in = input_of(m);
    const int64_t rows = rows_of(m), cols = cols_of(m);
    if (o_.int_grid && o_.awq_clip && m != LayerMatrix::kQ && m != LayerMatrix::kK) {
      std::vector<float> x = in.in->sampled;
      if (in.s != nullptr) ScaleColumns(x.data(), in.in->n_sampled(), cols, in.s, true);
      LOWBIT_ASSIGN_OR_RETURN(std::vector<float> max_val,
                              AwqSearchClip(mat(m), rows, cols, x.data(), in.in->n_sampled(), cols, o_.spec, AwqClipOptions{}, pool_.get()));
      AwqApplyClip(mat(m), rows, cols, o_.spec.granularity == QuantGranularity::kPerGroup ? o_.spec.group_size : cols, max_val.data());
    }
    const std::vector<float> scaled(cal_->Matrix(m).begin(), cal_->Matrix(m).end());
    const std::vector<float> imp = in.in->Importance(in.s);
    LOWBIT_RETURN_IF_ERROR(FinishMatrix(l, m, scaled, nullptr, imp.data()));
  }
  report_.seconds_quantize += Seconds(t0);
  cal_->FreeLayer();
  return OkStatus();
}

Expected<std::vector<float>> CalibratedModel::OutputImportance() {
  if (next_layer_ < n_layers()) return Errorf("the classifier's importance needs every layer calibrated first");
  const int64_t E = model_->config().n_embd, n = cal_->seqlen();
  std::vector<double> sum(Z(E), 0.0);
  std::vector<float> y(Z(n * E));
  for (int64_t s = 0; s < cal_->n_samples(); ++s) {
    cal_->FinalNorm(s, y.data());
    for (int64_t i = 0; i < n * E; ++i) sum[Z(i % E)] += static_cast<double>(y[Z(i)]) * y[Z(i)];
  }
  std::vector<float> imp(Z(E));
  for (int64_t c = 0; c < E; ++c) imp[Z(c)] = static_cast<float>(sum[Z(c)] / static_cast<double>(cal_->n_tokens()));
  return imp;
}

}  // namespace lowbit

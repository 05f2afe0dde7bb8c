#include "lowbit/train/qat.h"

#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "lowbit/formats/gguf_vocab.h"
#include "lowbit/formats/gguf_writer.h"
#include "lowbit/formats/hf.h"
#include "lowbit/formats/imatrix.h"
#include "lowbit/numeric/convert.h"
#include "lowbit/numeric/half.h"
#include "lowbit/pipeline/model_source.h"
#include "lowbit/pipeline/quantize.h"
#include "lowbit/pipeline/quantize_folder.h"
#include "lowbit/quant/error_stats.h"
#include "lowbit/tokenizer/tokenizer.h"
#include "lowbit/train/data.h"
#include "lowbit/train/fake_quant.h"
#include "lowbit/train/graph.h"
#include "lowbit/train/holdout.h"
#include "lowbit/train/self_data.h"
#include "lowbit/train/weights.h"

namespace lowbit::train {
namespace {

// Every tensor of the model as an F32 master parameter, and the fake-quantized state of those the
// plan quantizes.
struct QatState {
  std::vector<std::unique_ptr<Param>> params;
  std::map<std::string, Param*> by_name;
  std::map<std::string, std::unique_ptr<FakeQuantTensor>> fq;
  std::map<std::string, std::unique_ptr<Param>> scales;  // LSQ: learned block scales per tensor
  std::map<std::string, const float*> imatrix;  // per-tensor importance, when given
  std::vector<std::vector<float>> teacher;      // initial values, per param
  std::map<std::string, const float*> teacher_by_name;

  std::vector<Param*> All() const {
    std::vector<Param*> v;
    for (const auto& p : params) v.push_back(p.get());
    for (const auto& [name, p] : scales) v.push_back(p.get());
    return v;
  }
  const float* ImatrixOf(const std::string& name) const {
    auto it = imatrix.find(name);
    return it == imatrix.end() ? nullptr : it->second;
  }
  float* ScalesOf(const std::string& name) const {
    auto it = scales.find(name);
    return it == scales.end() ? nullptr : it->second->value.data();
  }
};

// formats: the fake quantization of each tensor that is quantized (the others train as F32).
Status BuildState(const GgufFile& g, const std::map<std::string, FakeQuantFormat>& formats, const Imatrix& im, bool learn_scales,
                  ThreadPool* pool, QatState* s) {
  for (const GgufTensorInfo& t : g.tensors()) {
    if (t.n_dims > 2) return Errorf("{}: tensor '{}' has {} dimensions; QAT handles 1-D and 2-D tensors", g.name(), t.name, t.n_dims);
    const auto cols = static_cast<int64_t>(t.dims[0]), rows = t.n_dims == 2 ? static_cast<int64_t>(t.dims[1]) : 1;
    auto p = std::make_unique<Param>(t.name, rows, cols, t.n_dims == 2);
    ToFloatFor(t.type)(t.data, p->value.data(), rows * cols);
    s->by_name[t.name] = p.get();
    const auto it = formats.find(t.name);
    if (t.n_dims == 2 && it != formats.end()) {
      s->fq[t.name] = std::make_unique<FakeQuantTensor>(it->second, rows, cols);
      if (const ImatrixEntry* e = im.Find(t.name); e != nullptr && UsesImatrix(it->second.type)) {
        if (static_cast<int64_t>(e->values.size()) != cols) {
          return Errorf("the importance matrix entry '{}' has {} values, the tensor {} columns; it was made for another model",
                        t.name, e->values.size(), cols);
        }
        s->imatrix[t.name] = e->values.data();
      }
    }
    s->params.push_back(std::move(p));
  }
  // LSQ: the scales start where the format's own quantizer puts them.
  for (auto& [name, f] : s->fq) {
    if (!learn_scales || f->format().encode_with_scales == nullptr) continue;
    const Param* w = s->by_name.at(name);
    auto p = std::make_unique<Param>(name + ".lsq_d", w->rows, f->scale_count() / w->rows, false);
    f->Refresh(w->value.data(), s->ImatrixOf(name), pool);
    f->CurrentScales(p->value.data());
    s->scales[name] = std::move(p);
  }
  s->teacher.reserve(s->params.size());
  for (const auto& p : s->params) {
    s->teacher.push_back(p->value);
    s->teacher_by_name[p->name] = s->teacher.back().data();
  }
  return OkStatus();
}

// The student reads the fake-quantized weights and writes the master gradients; the teacher reads
// the initial F32 values.
Weights BuildWeights(const LlamaConfig& c, QatState& s, bool teacher) {
  auto value = [&](const std::string& name) -> const float* {
    auto it = s.by_name.find(name);
    if (it == s.by_name.end()) return nullptr;
    return teacher ? s.teacher_by_name.at(name) : it->second->value.data();
  };
  auto grad = [&](const std::string& name) -> float* {
    auto it = s.by_name.find(name);
    return teacher || it == s.by_name.end() ? nullptr : it->second->grad.data();
  };
  auto lin = [&](const std::string& name) {
    const Param* p = s.by_name.at(name);
    Linear l{.rows = p->rows, .cols = p->cols, .w = value(name), .dw = grad(name)};
    auto f = s.fq.find(name);
    if (!teacher && f != s.fq.end()) {
      const FakeQuantFormat& fmt = f->second->format();
      l.type = fmt.type;
      l.data = f->second->bytes().data();
      l.row_stride = f->second->row_bytes();
      l.w = f->second->values().data();
      if (!fmt.x_map.empty()) {
        l.x_map = fmt.x_map.data();
        l.stored_cols = fmt.layout->stored_cols;
      }
    }
    return l;
  };
  Weights w;
  const bool tied = s.by_name.count("output.weight") == 0;
  const Linear emb = lin("token_embd.weight");
  w.tok_embd = emb.w;
  w.d_tok_embd = emb.dw;
  w.output_norm = value("output_norm.weight");
  w.d_output_norm = grad("output_norm.weight");
  w.output = tied ? emb : lin("output.weight");
  w.layers.resize(static_cast<size_t>(c.n_layer));
  for (int64_t l = 0; l < c.n_layer; ++l) {
    Weights::Layer& L = w.layers[static_cast<size_t>(l)];
    const std::string p = "blk." + std::to_string(l) + ".";
    L.attn_norm = value(p + "attn_norm.weight");
    L.d_attn_norm = grad(p + "attn_norm.weight");
    L.ffn_norm = value(p + "ffn_norm.weight");
    L.d_ffn_norm = grad(p + "ffn_norm.weight");
    for (int k = 0; k < 7; ++k) SlotOf(L, k) = lin(LayerWeightName(l, k));
    L.wq.bias = value(p + "attn_q.bias");
    L.wq.dbias = grad(p + "attn_q.bias");
    L.wk.bias = value(p + "attn_k.bias");
    L.wk.dbias = grad(p + "attn_k.bias");
    L.wv.bias = value(p + "attn_v.bias");
    L.wv.dbias = grad(p + "attn_v.bias");
  }
  return w;
}

Status WriteQuantized(const GgufFile& g, const QatState& s, const QuantMix& mix, const std::string& path, uint64_t* size) {
  GgufWriter w;
  for (const GgufKv& kv : g.kvs()) w.SetKv(kv.key, kv.value);
  for (const GgufTensorInfo& t : g.tensors()) {
    const std::span<const uint64_t> dims(t.dims.data(), t.n_dims);
    auto f = s.fq.find(t.name);
    if (f != s.fq.end()) {
      const std::vector<uint8_t>* bytes = &f->second->bytes();
      LOWBIT_RETURN_IF_ERROR(w.AddTensor(t.name, f->second->format().type, dims, [bytes](std::span<uint8_t> out) {
        std::memcpy(out.data(), bytes->data(), out.size());
        return OkStatus();
      }));
    } else {
      const std::vector<float>* v = &s.by_name.at(t.name)->value;
      LOWBIT_RETURN_IF_ERROR(w.AddTensor(t.name, GgmlType::kF32, dims, [v](std::span<uint8_t> out) {
        std::memcpy(out.data(), v->data(), out.size());
        return OkStatus();
      }));
    }
  }
  w.SetKv("general.file_type", GgufValue::U32(mix.file_type));
  w.SetKv("general.quantization_version", GgufValue::U32(2));
  LOWBIT_RETURN_IF_ERROR(w.Write(path));
  *size = w.FileSize();
  return OkStatus();
}

// The grid a fake-quantized tensor's bytes hold (GGUF row order), for the folder writer.
LinearQuantized GridOf(const FakeQuantTensor& f) {
  const FakeQuantFormat& fmt = f.format();
  const GroupedLayout& l = *fmt.layout;
  LinearQuantized q;
  q.bits = fmt.grid->bits;
  q.rows = f.rows();
  q.cols = f.cols();
  q.group_size = fmt.scale_block;
  q.codes.resize(static_cast<size_t>(q.rows * q.cols));
  std::vector<uint16_t> d(static_cast<size_t>(l.n_groups() * q.rows));
  q.zeros.resize(d.size());
  UnpackGroupedRows(l, f.bytes().data(), q.rows, q.codes.data(), d.data(), q.zeros.data());
  q.scales.resize(d.size());
  for (size_t i = 0; i < d.size(); ++i) q.scales[i] = Fp16ToFp32(d[i]);
  q.g_idx.resize(static_cast<size_t>(q.cols));
  for (int64_t c = 0; c < q.cols; ++c) q.g_idx[c] = static_cast<int32_t>(c / q.group_size);
  return q;
}

Expected<uint64_t> WriteFolder(const ConversionPlan& plan, const QatOptions& o, const QuantConfig& qc, const QatState& s,
                               const std::string& mix) {
  FolderContents contents;
  contents.matrix = [&](const PlannedTensor& t, TensorQuantReport* rep) -> Expected<LinearQuantized> {
    const auto it = s.fq.find(t.name);
    if (it == s.fq.end()) return Errorf("{}: not fake-quantized", t.name);
    ErrorStats es;
    es.Add(s.teacher_by_name.at(t.name), it->second->values().data(), it->second->rows() * it->second->cols());
    rep->rmse = es.rmse();
    rep->max_abs_err = es.max_abs_err;
    rep->sqnr_db = es.sqnr_db();
    return GridOf(*it->second);
  };
  contents.other = [&](const PlannedTensor& t, TensorQuantReport* rep) -> Expected<FolderValues> {
    const auto it = s.by_name.find(t.name);
    if (it == s.by_name.end()) return Errorf("{}: not in the trained model", t.name);
    rep->note = "trained (F32 master)";
    return FolderValues{it->second->value, true};
  };
  QuantizeReport report;
  report.mix = mix;
  report.method = "qat";
  LOWBIT_ASSIGN_OR_RETURN(report, WriteQuantizedFolder(plan, o.model, o.output, qc, contents, std::move(report)));
  return report.file_size;
}

}  // namespace

QatSchedule DefaultQatSchedule(double bits_per_weight) {
  if (bits_per_weight <= kQatLowBits) return {.lr = 1e-4f, .steps = 600, .holdout = 0};
  return {.lr = 1e-5f, .steps = 200, .holdout = 32};
}

Expected<QatReport> RunQat(const QatOptions& o, const std::function<void(const std::string&)>& log) {
  const auto t0 = std::chrono::steady_clock::now();
  auto say = [&](const std::string& s) {
    if (log) log(s);
  };
  if (o.train_text.empty() == !o.self_distill) return Errorf("give the training data: --train TEXT or --self-distill (one of them)");
  if (o.loss != "kl" && o.loss != "ce") return Errorf("--loss must be kl or ce, not '{}'", o.loss);
  if (o.grid != "search" && o.grid != "frozen") return Errorf("--grid must be search or frozen, not '{}'", o.grid);
  TrainConfig tc = o.train;  // lr < 0, steps 0, holdout < 0: the type's default (DefaultQatSchedule), set below
  int64_t holdout = o.holdout;
  if (tc.batch % tc.micro_batch != 0) return Errorf("--batch {} must be a multiple of --micro-batch {}", tc.batch, tc.micro_batch);
  const bool to_folder = o.format != "gguf";
  if (to_folder && o.format != "gptq") return Errorf("--format {}: QAT writes gguf or gptq", o.format);
  if (to_folder && !o.type.empty()) return Errorf("--type {} is for GGUF output; --format gptq takes --bits and --group-size", o.type);
  if (!to_folder && o.type.empty()) return Errorf("give --type TYPE_OR_MIX for GGUF output, or --format gptq");
  if (to_folder && !o.imatrix.empty()) return Errorf("--imatrix guides the ggml types' searching quantizers; the int grid is rounded to nearest");
  QuantMix mix;
  QuantConfig qc;
  LinearQuantSpec spec;
  ConversionPlan plan;
  if (to_folder) {
    LOWBIT_ASSIGN_OR_RETURN(qc, FolderQuantConfig(o.folder, 0.01));
    LOWBIT_ASSIGN_OR_RETURN(spec, FolderGridSpec(o.folder, qc));
    LOWBIT_ASSIGN_OR_RETURN(plan, PlanFolderInput(o.model, o.output, o.format));
    mix.name = fmt::format("gptq int{} g{} {}", o.folder.bits, o.folder.group_size, qc.sym ? "sym" : "asym");
  } else {
    LOWBIT_ASSIGN_OR_RETURN(mix, ResolveQuantMix(o.type));
    LOWBIT_ASSIGN_OR_RETURN(plan, PlanConversion(o.model, ""));
  }
  LOWBIT_ASSIGN_OR_RETURN(GgufFile g, OpenModel(o.model));
  LOWBIT_ASSIGN_OR_RETURN(LlamaModel model, LlamaModel::Load(g));
  if (!model.PlainLlama()) {
    return Errorf("{}: training runs models that compute what llama does; '{}' adds operations (norms, GeGLU, soft-caps, "
                  "sliding windows or RoPE factors) it does not implement yet", g.name(), model.config().arch);
  }
  const LlamaConfig& c = model.config();
  if (tc.ctx > c.n_ctx_train) return Errorf("--ctx-size {} is longer than the model's context {}", tc.ctx, c.n_ctx_train);
  for (const GgufTensorInfo& t : g.tensors()) {
    if (!IsFloatType(t.type)) {
      return Errorf("{}: tensor '{}' is {}; QAT trains from float weights: give the F32, F16 or BF16 model", g.name(), t.name,
                    TypeInfo(t.type).name);
    }
  }
  LOWBIT_ASSIGN_OR_RETURN(Vocab vocab, VocabFromGguf(g));
  LOWBIT_ASSIGN_OR_RETURN(auto tok, Tokenizer::Create(vocab));
  std::map<std::string, FakeQuantFormat> formats;
  if (to_folder) {
    for (const PlannedTensor& t : plan.tensors) {
      if (!t.name.starts_with("blk.") || t.dims.size() != 2) continue;  // the folder writer's layer matrices
      auto f = IntGridFakeQuant(spec, static_cast<int64_t>(t.dims[0]));
      if (!f.ok()) return Errorf("{}: {}", t.name, f.status().message());
      formats.emplace(t.name, std::move(*f));
    }
  } else {
    QuantizeOptions qo;
    qo.input = o.model;
    qo.type = o.type;
    qo.imatrix = o.imatrix;
    qo.pure = o.pure;
    qo.tensor_types = o.tensor_types;
    qo.output_tensor_type = o.output_tensor_type;
    qo.token_embedding_type = o.token_embedding_type;
    LOWBIT_ASSIGN_OR_RETURN(std::vector<PlannedType> types, PlanQuantizedTypes(plan, qo, !o.imatrix.empty()));
    for (size_t i = 0; i < plan.tensors.size(); ++i) {
      const PlannedTensor& t = plan.tensors[i];
      if (t.dims.size() != 2 || types[i].type == GgmlType::kF32) continue;
      const FakeQuantFormat* f = FindFakeQuant(types[i].type);
      if (f == nullptr) return Errorf("tensor '{}' would be {}, which QAT cannot train for", t.name, TypeInfo(types[i].type).name);
      formats.emplace(t.name, *f);
    }
  }
  std::string schedule_line;  // said once the inputs are checked (a bad input gets one line)
  {
    double bits = 0, elements = 0;
    for (const PlannedTensor& t : plan.tensors) {
      const auto it = formats.find(t.name);
      if (it == formats.end() || t.dims.size() != 2) continue;
      const FakeQuantFormat& f = it->second;
      const auto n = static_cast<double>(t.dims[0] * t.dims[1]);
      if (f.grid.has_value()) {  // as a GPTQ folder stores it: the codes, an fp16 scale and a zero per group
        bits += n * (f.grid->bits + (16.0 + (f.grid->sym ? 0 : f.grid->bits)) / static_cast<double>(f.scale_block));
      } else {
        bits += 8.0 * static_cast<double>(f.RowBytes(static_cast<int64_t>(t.dims[0])) * t.dims[1]);
      }
      elements += n;
    }
    const double bpw = elements > 0 ? bits / elements : 32.0;
    const QatSchedule def = DefaultQatSchedule(bpw);
    if (tc.lr < 0 || tc.steps == 0 || holdout < 0) {
      if (tc.lr < 0) tc.lr = def.lr;
      if (tc.steps == 0) tc.steps = def.steps;
      if (holdout < 0) holdout = def.holdout;
      schedule_line = fmt::format("the fake-quantized tensors average {:.2f} bits per weight: {} steps at a peak learning rate of {:.0e}, {}",
                                  bpw, tc.steps, tc.lr,
                                  holdout > 0 ? fmt::format("{} sequences held out", holdout) : std::string("no held-out selection"));
    }
  }
  Imatrix im;
  if (!o.imatrix.empty()) {
    LOWBIT_ASSIGN_OR_RETURN(im, LoadImatrix(o.imatrix));
  }
  ThreadPool pool(o.threads);
  QatState s;
  LOWBIT_RETURN_IF_ERROR(BuildState(g, formats, im, o.learn_scales, &pool, &s));
  if (o.learn_scales && s.scales.empty()) {
    return Errorf("--learn-scales: none of the {} types has free block scales (Q4_0, Q5_0, Q8_0, IQ4_NL and the int grid have)", mix.name);
  }
  if (o.grid == "frozen") {
    // The grids of post-training quantization (from the initial weights, whatever a resumed
    // checkpoint holds), kept for the whole run.
    int64_t frozen = 0;
    for (auto& [name, f] : s.fq) {
      if (s.scales.count(name) != 0) continue;  // LSQ learns these scales
      f->Refresh(s.teacher_by_name.at(name), s.ImatrixOf(name), &pool);
      frozen += f->FreezeGrid() ? 1 : 0;
    }
    say(fmt::format("--grid frozen: {} of {} tensors keep the block grids of post-training quantization", frozen, s.fq.size()));
  }
  if (!schedule_line.empty()) say(schedule_line);
  const Weights student = BuildWeights(c, s, false), teacher = BuildWeights(c, s, true);

  // Data.
  const int64_t T = tc.ctx;
  Expected<TokenDataset> data = Errorf("no data");
  std::vector<uint16_t> cached_lp;  // the teacher's log-probabilities of generated sequences, fp16
  std::vector<int32_t> held;        // held-out sequences [holdout][T] (holdout.h)
  if (o.self_distill) {
    const int64_t n_train = o.samples > 0 ? o.samples : std::min<int64_t>(tc.steps * tc.batch, 1024);
    const int64_t n = n_train + holdout;  // the last ones are held out
    say(fmt::format("generating {} sequences of {} tokens with the model (LLM-QAT's data-free recipe)", n, T));
    const auto g0 = std::chrono::steady_clock::now();
    // Distillation on generated text keeps the log-probabilities the generation computed (up to
    // 1 GiB): no teacher forward in the steps.
    const bool keep = o.loss == "kl" && n * T * c.n_vocab * 2 <= (int64_t{1} << 30);
    LOWBIT_ASSIGN_OR_RETURN(auto seqs, SampleSequences(model, static_cast<int32_t>(vocab.bos_id), n, T, tc.seed, pool.size(),
                                                       [&](int64_t done) {
                                                         if (done % 128 == 0 || done == n) say(fmt::format("  {}/{} sequences", done, n));
                                                       },
                                                       keep ? &cached_lp : nullptr));
    const double gs = std::chrono::duration<double>(std::chrono::steady_clock::now() - g0).count();
    say(fmt::format("generated {} tokens in {:.1f} s ({:.0f} tok/s)", n * T, gs, static_cast<double>(n * T) / gs));
    for (int64_t i = n_train; i < n; ++i) held.insert(held.end(), seqs[i].begin(), seqs[i].begin() + T);
    seqs.resize(static_cast<size_t>(n_train));
    data = TokenDataset::FromSequences(std::move(seqs), T);
  } else {
    LOWBIT_ASSIGN_OR_RETURN(std::string text, ReadTextFile(o.train_text, uint64_t{1} << 30));
    std::vector<int32_t> tokens = tok->EncodeWithBos(text);
    const int32_t bos = !tokens.empty() && vocab.bos_id >= 0 && tokens[0] == vocab.bos_id ? static_cast<int32_t>(vocab.bos_id) : -1;
    say(fmt::format("{}: {} tokens", o.train_text, tokens.size()));
    LOWBIT_ASSIGN_OR_RETURN(held, SplitHoldout(&tokens, holdout, T, bos, 4 * (T + 1)));
    if (holdout > 0) say(fmt::format("held out its last {} tokens ({} sequences) to pick the checkpoint", held.size(), holdout));
    data = TokenDataset::FromStream(std::move(tokens), bos, T);
  }
  if (!data.ok()) return data.status();

  Graph graph(c, tc.micro_batch, T, &pool);
  const int64_t R = tc.micro_batch * T, V = c.n_vocab;
  std::vector<int32_t> inputs(static_cast<size_t>(R)), targets(static_cast<size_t>(R));
  const int64_t n_held = static_cast<int64_t>(held.size()) / T;
  std::vector<float> teacher_lp(o.loss == "kl" || n_held > 0 ? static_cast<size_t>(R * V) : 0);
  auto refresh = [&] {
    for (auto& [name, f] : s.fq) f->Refresh(s.by_name.at(name)->value.data(), s.ImatrixOf(name), &pool, s.ScalesOf(name));
  };
  // Held-out selection (holdout.h): the student's mean KL on the held-out sequences, in micro-batches
  // (a short last one padded with its own last sequence and masked); the teacher's log-probabilities
  // are kept when they fit in 256 MiB, else recomputed at each evaluation.
  std::vector<float> held_lp;
  const bool keep_held_lp = n_held * T * V * 4 <= (int64_t{256} << 20);
  std::vector<uint8_t> mask(static_cast<size_t>(R));
  auto held_out_kl = [&]() {
    double sum = 0;
    for (int64_t first = 0; first < n_held; first += tc.micro_batch) {
      const int64_t k = std::min(tc.micro_batch, n_held - first);
      for (int64_t i = 0; i < tc.micro_batch; ++i) {
        const int32_t* src = held.data() + (first + std::min(i, k - 1)) * T;
        std::copy(src, src + T, inputs.data() + i * T);
        std::fill(mask.begin() + i * T, mask.begin() + (i + 1) * T, i < k ? 1 : 0);
      }
      const auto lp0 = static_cast<size_t>(first * T * V), lp_n = static_cast<size_t>(k * T * V);
      if (!keep_held_lp || held_lp.size() < lp0 + lp_n) {
        LogSoftmaxRows(graph.Forward(teacher, inputs.data()), R, V, teacher_lp.data(), &pool);
        if (keep_held_lp) held_lp.insert(held_lp.end(), teacher_lp.begin(), teacher_lp.begin() + static_cast<ptrdiff_t>(lp_n));
      } else {
        std::copy(held_lp.begin() + static_cast<ptrdiff_t>(lp0), held_lp.begin() + static_cast<ptrdiff_t>(lp0 + lp_n), teacher_lp.begin());
      }
      sum += KlDistill(graph.Forward(student, inputs.data()), teacher_lp.data(), mask.data(), R, V, 0.0f, graph.dlogits(), &pool);
    }
    return sum / static_cast<double>(n_held * T);
  };
  const int64_t eval_every = o.eval_every > 0 ? o.eval_every : std::max<int64_t>(1, tc.steps / 20);
  BestSnapshot best;
  auto evaluate = [&](int64_t step) {
    const double kl = held_out_kl();
    const bool kept = best.Offer(step, kl, s.All());
    say(fmt::format("held-out KL {:.6f} at step {}{}", kl, step, kept ? "  (best so far)" : ""));
  };
  TrainHooks hooks;
  hooks.before_step = [&](int64_t step) {
    refresh();
    if (n_held > 0 && step % eval_every == 0) evaluate(step);
  };
  hooks.micro_batch = [&](int64_t step, int64_t first, int64_t n, float grad_scale) -> Expected<std::pair<double, int64_t>> {
    std::vector<int64_t> picked(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) picked[i] = data->Get(tc.seed, step, first + i, inputs.data() + i * T, targets.data() + i * T);
    double loss;
    if (o.loss == "kl") {
      if (!cached_lp.empty()) {
        for (int64_t i = 0; i < n; ++i) {
          ConvertF16ToF32(cached_lp.data() + picked[i] * T * V, teacher_lp.data() + i * T * V, static_cast<size_t>(T * V));
        }
      } else {
        LogSoftmaxRows(graph.Forward(teacher, inputs.data()), R, V, teacher_lp.data(), &pool);
      }
      const float* logits = graph.Forward(student, inputs.data());
      loss = KlDistill(logits, teacher_lp.data(), nullptr, R, V, grad_scale, graph.dlogits(), &pool);
    } else {
      const float* logits = graph.Forward(student, inputs.data());
      loss = CrossEntropy(logits, targets.data(), R, V, grad_scale, graph.dlogits(), &pool);
    }
    graph.Backward(student);
    return std::make_pair(loss, R);
  };
  hooks.after_backward = [&] {
    for (auto& [name, f] : s.fq) {
      Param* w = s.by_name.at(name);
      if (auto it = s.scales.find(name); it != s.scales.end()) f->ScaleGradient(w->value.data(), w->grad.data(), it->second->grad.data());
      f->MaskGradient(w->grad.data(), &pool);
    }
  };
  TrainConfig run = tc;
  run.identity.kind = "qat";
  run.identity.config = nlohmann::json({{"model", std::filesystem::path(o.model).filename().string()}, {"type", mix.name},
                                        {"loss", o.loss}, {"lsq", o.learn_scales}, {"ctx", T}, {"batch", tc.batch}, {"steps", tc.steps}, {"holdout", holdout},
                                        {"data", o.self_distill ? std::string("self") : o.train_text}})
                            .dump();
  QatReport rep;
  rep.mix = mix.name;
  rep.quantized_tensors = static_cast<int64_t>(s.fq.size());
  for (const auto& p : s.params) rep.trained_parameters += p->size();
  say(fmt::format("QAT for {}: {} tensors fake-quantized, {} parameters trained, loss {}, {} steps of {} x {} tokens", mix.name,
                  s.fq.size(), rep.trained_parameters, o.loss, tc.steps, tc.batch, T));
  const int64_t log_every = std::max<int64_t>(1, tc.steps / 50);
  bool first = true;
  LOWBIT_ASSIGN_OR_RETURN(rep.steps_run, Train(run, s.All(), hooks, &pool, [&](const StepStats& st) {
    if (first) rep.first_loss = st.loss;
    first = false;
    rep.last_loss = st.loss;
    rep.tokens_per_s = st.tokens_per_s;
    if (st.step % log_every == 0 || st.step == st.steps || st.step == 1 || st.checkpointed) say(FormatStep(st));
  }));
  refresh();  // the final weights' bytes
  rep.selected_step = tc.steps;
  if (n_held > 0) {
    evaluate(tc.steps);  // the loop's last before_step was for step tc.steps - 1
    rep.selected_step = best.step();
    rep.heldout_kl = best.loss();
    if (best.step() != tc.steps) {
      best.Restore(s.All());
      refresh();
    }
    say(fmt::format("writing the state of step {} (held-out KL {:.6f}, the lowest of the evaluations{})", best.step(), best.loss(),
                    best.step() == 0 ? ": training did not beat post-training quantization on the held-out text" : ""));
  }
  if (to_folder) {
    LOWBIT_ASSIGN_OR_RETURN(rep.file_size, WriteFolder(plan, o, qc, s, mix.name));
  } else {
    LOWBIT_RETURN_IF_ERROR(WriteQuantized(g, s, mix, o.output, &rep.file_size));
  }
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace lowbit::train

#include "lowbit/train/finetune.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "lowbit/formats/gguf_vocab.h"
#include "lowbit/formats/hf.h"
#include "lowbit/tokenizer/tokenizer.h"
#include "lowbit/train/data.h"
#include "lowbit/train/graph.h"
#include "lowbit/train/lora_file.h"
#include "lowbit/train/weights.h"

namespace lowbit::train {
namespace {

constexpr int kOutputSlot = 7;

struct Adapted {
  std::string base;
  std::unique_ptr<Param> a, b;
  LoraParam lora;
};

}  // namespace

Expected<std::vector<int>> ParseLoraTargets(const std::vector<std::string>& names) {
  static const char* kShort[8] = {"q", "k", "v", "o", "gate", "up", "down", "output"};
  static const char* kHf[8] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"};
  std::vector<int> slots;
  for (const std::string& n : names) {
    int found = -1;
    for (int k = 0; k < 8; ++k) {
      if (n == kShort[k] || n == kHf[k]) found = k;
    }
    if (found < 0) return Errorf("--targets: unknown projection '{}'; choose from q, k, v, o, gate, up, down, output", n);
    if (std::find(slots.begin(), slots.end(), found) == slots.end()) slots.push_back(found);
  }
  if (slots.empty()) return Errorf("--targets: no projection given");
  return slots;
}

Expected<FinetuneReport> RunFinetune(const FinetuneOptions& o, const std::function<void(const std::string&)>& log) {
  const auto t0 = std::chrono::steady_clock::now();
  auto say = [&](const std::string& s) {
    if (log) log(s);
  };
  const TrainConfig& tc = o.train;
  if (tc.batch % tc.micro_batch != 0) return Errorf("--batch {} must be a multiple of --micro-batch {}", tc.batch, tc.micro_batch);
  if (o.rank < 1) return Errorf("--lora-rank must be at least 1");
  if (!std::isfinite(o.alpha) || o.alpha <= 0) return Errorf("--lora-alpha must be positive");
  LOWBIT_ASSIGN_OR_RETURN(std::vector<int> slots, ParseLoraTargets(o.targets));
  LOWBIT_ASSIGN_OR_RETURN(GgufFile g, GgufFile::Open(o.model));
  if (std::find(slots.begin(), slots.end(), kOutputSlot) != slots.end() && g.FindTensor("output.weight") == nullptr) {
    return Errorf("{}: the classifier is the embedding (no output.weight); an adapter on it is not supported: drop 'output' "
                  "from --targets", o.model);
  }
  LOWBIT_ASSIGN_OR_RETURN(LlamaModel model, LlamaModel::Load(g));
  if (!model.PlainLlama()) {
    return Errorf("{}: training runs models that compute what llama does; '{}' adds operations (norms, GeGLU, soft-caps, "
                  "sliding windows or RoPE factors) it does not implement yet", g.name(), model.config().arch);
  }
  const LlamaConfig& c = model.config();
  if (tc.ctx > c.n_ctx_train) return Errorf("--ctx-size {} is longer than the model's context {}", tc.ctx, c.n_ctx_train);
  LOWBIT_ASSIGN_OR_RETURN(Vocab vocab, VocabFromGguf(g));
  LOWBIT_ASSIGN_OR_RETURN(auto tok, Tokenizer::Create(vocab));
  LOWBIT_ASSIGN_OR_RETURN(std::string text, ReadTextFile(o.train_text, uint64_t{1} << 30));
  std::vector<int32_t> tokens = tok->EncodeWithBos(text);
  const int32_t bos = !tokens.empty() && vocab.bos_id >= 0 && tokens[0] == vocab.bos_id ? static_cast<int32_t>(vocab.bos_id) : -1;
  say(fmt::format("{}: {} tokens", o.train_text, tokens.size()));
  LOWBIT_ASSIGN_OR_RETURN(TokenDataset data, TokenDataset::FromStream(std::move(tokens), bos, tc.ctx));

  ThreadPool pool(o.threads);
  FrozenBase base(model, &pool);
  Weights& w = base.weights();
  // The adapters: A uniform in +-1/sqrt(in) (PEFT's kaiming_uniform with a = sqrt(5)), B zero.
  std::vector<std::unique_ptr<Adapted>> adapted;
  for (int64_t l = -1; l < c.n_layer; ++l) {
    for (int slot : slots) {
      if ((slot == kOutputSlot) != (l < 0)) continue;
      Linear& lin = slot == kOutputSlot ? w.output : SlotOf(w.layers[static_cast<size_t>(l)], slot);
      if (o.rank > std::min(lin.rows, lin.cols)) return Errorf("--lora-rank {} exceeds the {} x {} weight", o.rank, lin.rows, lin.cols);
      auto ad = std::make_unique<Adapted>();
      ad->base = slot == kOutputSlot ? std::string("output.weight") : LayerWeightName(l, slot);
      ad->a = std::make_unique<Param>(ad->base + ".lora_a", o.rank, lin.cols, true);
      ad->b = std::make_unique<Param>(ad->base + ".lora_b", lin.rows, o.rank, true);
      const float bound = 1.0f / std::sqrt(static_cast<float>(lin.cols));
      uint64_t r = Mix64(tc.seed ^ Mix64(adapted.size() + 1));
      for (float& v : ad->a->value) {
        r = Mix64(r);
        v = bound * (2.0f * static_cast<float>(r >> 40) / static_cast<float>(1 << 24) - 1.0f);
      }
      ad->lora = {.rank = o.rank, .scale = o.alpha / static_cast<float>(o.rank), .a = ad->a->value.data(), .b = ad->b->value.data(),
                  .da = ad->a->grad.data(), .db = ad->b->grad.data()};
      lin.lora = &ad->lora;
      adapted.push_back(std::move(ad));
    }
  }
  std::vector<Param*> params;
  for (auto& ad : adapted) {
    params.push_back(ad->a.get());
    params.push_back(ad->b.get());
  }
  FinetuneReport rep;
  rep.adapted = static_cast<int64_t>(adapted.size());
  for (Param* p : params) rep.trained_parameters += p->size();

  const int64_t T = tc.ctx, R = tc.micro_batch * T, V = c.n_vocab;
  Graph graph(c, tc.micro_batch, T, &pool);
  std::vector<int32_t> inputs(static_cast<size_t>(R)), targets(static_cast<size_t>(R));
  TrainHooks hooks;
  hooks.micro_batch = [&](int64_t step, int64_t first, int64_t n, float grad_scale) -> Expected<std::pair<double, int64_t>> {
    for (int64_t i = 0; i < n; ++i) data.Get(tc.seed, step, first + i, inputs.data() + i * T, targets.data() + i * T);
    const float* logits = graph.Forward(w, inputs.data());
    const double loss = CrossEntropy(logits, targets.data(), R, V, grad_scale, graph.dlogits(), &pool);
    graph.Backward(w);
    return std::make_pair(loss, R);
  };
  TrainConfig run = tc;
  run.identity.kind = "lora";
  run.identity.config = nlohmann::json({{"model", std::filesystem::path(o.model).filename().string()}, {"rank", o.rank},
                                        {"alpha", o.alpha}, {"targets", o.targets}, {"ctx", T}, {"batch", tc.batch},
                                        {"steps", tc.steps}, {"data", o.train_text}})
                            .dump();
  say(fmt::format("LoRA rank {} alpha {} on {} weights of {} ({} base): {} parameters, {} steps of {} x {} tokens", o.rank, o.alpha,
                  adapted.size(), std::filesystem::path(o.model).filename().string(), TypeInfo(model.layers[0].wq.type).name,
                  rep.trained_parameters, tc.steps, tc.batch, T));
  const int64_t log_every = std::max<int64_t>(1, tc.steps / 50);
  bool first = true;
  LOWBIT_ASSIGN_OR_RETURN(rep.steps_run, Train(run, params, hooks, &pool, [&](const StepStats& st) {
    if (first) rep.first_loss = st.loss;
    first = false;
    rep.last_loss = st.loss;
    rep.tokens_per_s = st.tokens_per_s;
    if (st.step % log_every == 0 || st.step == st.steps || st.step == 1 || st.checkpointed) say(FormatStep(st));
  }));

  LoraAdapter out;
  out.arch = c.arch;
  out.alpha = o.alpha;
  for (auto& ad : adapted) {
    LoraTensor t;
    t.base = ad->base;
    t.rank = o.rank;
    t.rows = ad->b->rows;
    t.cols = ad->a->cols;
    t.a = ad->a->value;
    t.b = ad->b->value;
    t.scale = o.alpha / static_cast<float>(o.rank);
    out.tensors.push_back(std::move(t));
  }
  rep.peft = std::filesystem::path(o.output).extension() != ".gguf";
  if (rep.peft) {
    LOWBIT_RETURN_IF_ERROR(WritePeftAdapter(out, c, o.output, std::filesystem::path(o.model).filename().string()));
  } else {
    LOWBIT_RETURN_IF_ERROR(WriteLoraGguf(out, c.arch, o.output, o.outtype));
  }
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace lowbit::train

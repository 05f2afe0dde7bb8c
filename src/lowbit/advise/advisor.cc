#include "lowbit/advise/advisor.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "lowbit/advise/prompt_probe.h"
#include "lowbit/advise/step_probe.h"
#include "lowbit/base/progress.h"
#include "lowbit/eval/cost_model.h"
#include "lowbit/model/session_memory.h"
#include "lowbit/pipeline/quant_mix.h"

namespace lowbit {
namespace {

constexpr double kFreeFraction = 0.10;       // memory a recommendation leaves to the rest of the machine
constexpr double kWorthSpeedup = 1.25;       // a smaller type is worth it when this much faster ...
constexpr double kNegligibleKld = 0.001;     // ... for less than this much more KLD (stories5M)
constexpr double kReadingSpeedTokS = 5;      // the ranking's floor for the recommended model

bool InMemory(const Hardware& hw, const AdviseOptions& o, uint64_t file_bytes) {
  if (o.residency != Residency::kAuto) return o.residency == Residency::kInMemory;
  return hw.huge_pages && file_bytes <= hw.ram_available / 2;  // ChooseResidency's rule
}

MachineSpeed SpeedFor(const Hardware& hw, bool in_memory) {
  MachineSpeed s = hw.speed;
  if (!in_memory) {
    for (auto& [t, ts] : s.types) {
      ts.stream_gbps *= hw.mapped_factor;
      ts.stream1_gbps *= hw.mapped_factor;
    }
  }
  return s;
}

// `s` with the prefill of `w` over n tokens timed at its own shapes, where the machine is this one.
MachineSpeed WithPromptShapes(const Hardware& hw, MachineSpeed s, const ModelWork& w, int64_t n) {
  if (hw.prompt_probe != nullptr) (void)hw.prompt_probe->Time(PromptShapesOf(w, n), &s);  // unmeasured shapes keep the GEMM rates
  return s;
}

// `s` with the decode of `w` timed at its own groups of products (DecodeGroupsOf), where the machine
// is this one; a mapped file's streamed groups at the mapped stream rate.
MachineSpeed WithDecodeGroups(const Hardware& hw, MachineSpeed s, const ModelWork& w, bool in_memory) {
  if (hw.prompt_probe == nullptr) return s;
  const DecodeGroups groups = DecodeGroupsOf(w, s);
  if (groups.groups.empty()) return s;
  (void)hw.prompt_probe->TimeDecode(groups, &s);  // an untimed group leaves the decode on the stream rates
  if (groups.streamed && !in_memory && hw.mapped_factor > 0) {
    for (auto& [g, t] : s.group_s) t /= hw.mapped_factor;
  }
  return s;
}

void EstimateCpu(const PlannedModel& p, const Hardware& hw, const AdviseOptions& o, Estimate* e) {
  const bool in_memory = p.folder_bytes > 0 || InMemory(hw, o, p.file_bytes);  // a folder's rows are built in memory
  const RunShape r{o.ctx, hw.threads, o.kv_f16, o.slots, 1, in_memory, hw.huge_pages};
  e->memory = PredictRunMemory(p, r);
  e->available = hw.ram_available;
  const ModelWork w = WorkOf(p.model, o.kv_f16, hw.threads);
  const MachineSpeed s = WithDecodeGroups(hw, SpeedFor(hw, in_memory), w, in_memory);
  auto decode = DecodeTokensPerSecond(w, s, 0, std::min(o.decode_tokens, e->ctx));
  if (!decode.ok()) {
    e->error = decode.status().message();
    return;
  }
  e->decode_tok_s = *decode;
  // A model that stays in the last-level cache: its decode step and its prompt timed whole on this
  // machine (a copy built from the plan; advise/step_probe.h). At 256 tokens its products are a
  // fraction of a millisecond each, and a step's hand-offs and serial work weigh as much as they do.
  // Where the copy cannot be made, the cost model's figures stand.
  const int64_t n = std::max<int64_t>(1, std::min(o.prompt_tokens, e->ctx));
  if (hw.prompt_probe != nullptr && p.folder_bytes == 0 && w.WeightBytes() <= static_cast<double>(s.llc_bytes)) {
    const StepProbeOptions so{.threads = hw.threads, .n_ctx = e->ctx, .kv_f16 = o.kv_f16, .tokens = std::min(o.decode_tokens, e->ctx), .prompt = n,
                              .in_memory = in_memory};
    if (auto t = TimeSteps(*p.file, so); t.ok() && t->decode_s > 0 && t->prompt_s > 0) {
      e->decode_tok_s = 1 / t->decode_s;
      e->prompt_tok_s = static_cast<double>(n) / t->prompt_s;
      return;
    }
  }
  auto prompt = PromptSeconds(w, WithPromptShapes(hw, s, w, n), n);
  if (prompt.ok()) e->prompt_tok_s = static_cast<double>(n) / *prompt;
}

// Tensor parallel over hw.nodes machines: the largest rank (the last, SplitDim) bounds memory and time.
void EstimateNodes(const PlannedModel& p, const Hardware& hw, const AdviseOptions& o, Estimate* e) {
  if (p.folder_bytes > 0) {
    e->error = "tensor parallel runs of a GPTQ or NF4 folder are not predicted (the shards are planned from GGUF headers)";
    return;
  }
  auto rank = LlamaModel::Load(*p.file, hw.nodes - 1, hw.nodes);
  if (!rank.ok()) {
    e->error = rank.status().message();
    return;
  }
  const SessionSizes s = PlanSession(*rank, SessionOptionsFor(e->ctx, hw.threads, o.kv_f16, o.slots));
  e->memory.in_memory = true;
  e->memory.weights = HeldWeightBytes(*rank);
  e->memory.kv_cache = s.kv_bytes;
  e->memory.buffers = s.TotalBytes() - s.kv_bytes;
  e->memory.overhead = kProcessBytes + static_cast<uint64_t>(p.model.config().n_vocab) * kBytesPerVocabEntry + p.n_merges * kBytesPerMerge;
  e->available = hw.ram_available;
  const ModelWork w = WorkOf(*rank, o.kv_f16, hw.threads);
  double total = 0;
  const int64_t n = std::max<int64_t>(1, std::min(o.decode_tokens, e->ctx));
  for (int64_t pos : {int64_t{0}, n - 1}) {
    auto t = TensorParallelDecodeSeconds(w, hw.speed, hw.nodes, hw.net, pos);
    if (!t.ok()) {
      e->error = t.status().message();
      return;
    }
    total += *t;
  }
  e->decode_tok_s = 2 / total;
  // Prefill over the network: each rank's GEMM on its shard, plus 2 all-reduces per layer of the
  // whole batch's hidden states.
  const int64_t np = std::max<int64_t>(1, std::min(o.prompt_tokens, e->ctx));
  auto prompt = PromptSeconds(w, WithPromptShapes(hw, hw.speed, w, np), np);
  if (prompt.ok()) {
    const double reduce = 2 * static_cast<double>(w.n_layer) *
                          AllReduceSeconds(static_cast<double>(w.n_embd) * 4 * static_cast<double>(np), hw.nodes, hw.net);
    e->prompt_tok_s = static_cast<double>(np) / (*prompt + reduce);
  }
}

// On a GPU described by its memory and bandwidth: the weights, the cache and lowbit's session
// buffers in its memory; decode at gpu_efficiency of its bandwidth. Prompt speed is not modelled.
void EstimateGpu(const PlannedModel& p, const Hardware& hw, const AdviseOptions& o, Estimate* e) {
  const SessionSizes s = PlanSession(p.model, SessionOptionsFor(e->ctx, 1, o.kv_f16, o.slots));
  e->memory.in_memory = true;
  e->memory.weights = p.file_bytes;
  e->memory.kv_cache = s.kv_bytes;
  e->memory.buffers = s.TotalBytes() - s.kv_bytes - s.AttentionScratchBytes();
  e->memory.overhead = 0;
  e->available = hw.vram;
  const ModelWork w = WorkOf(p.model, o.kv_f16, 1);
  const int64_t n = std::max<int64_t>(1, std::min(o.decode_tokens, e->ctx));
  const double rate = hw.gpu_bandwidth_gbps * 1e9 * hw.gpu_efficiency;
  const double seconds = (2 * w.WeightBytes() + w.KvBytes(0) + w.KvBytes(n - 1)) / 2 / rate;
  e->decode_tok_s = 1 / seconds;
}

double Kld(const Estimate& e) { return e.quality.stories5m != nullptr ? e.quality.stories5m->kld : 1e9; }

bool Recommendable(const Estimate& e, const Hardware& hw) {
  const double total = static_cast<double>(hw.has_gpu() ? hw.vram : hw.ram_total);
  return e.error.empty() && e.fits && static_cast<double>(e.headroom_bytes) >= kFreeFraction * total;
}

// The most accurate recommendable estimate, moving down while the next is worth it; none: -1.
int Pick(const std::vector<Estimate>& c, const Hardware& hw) {
  std::vector<int> ok;
  for (size_t i = 0; i < c.size(); ++i) {
    if (Recommendable(c[i], hw) && c[i].quality.stories5m != nullptr) ok.push_back(static_cast<int>(i));
  }
  if (ok.empty()) return -1;
  std::sort(ok.begin(), ok.end(), [&](int a, int b) { return Kld(c[a]) < Kld(c[b]); });
  int pick = ok[0];
  for (size_t k = 1; k < ok.size(); ++k) {
    const Estimate &cur = c[pick], &next = c[ok[k]];
    if (next.decode_tok_s >= kWorthSpeedup * cur.decode_tok_s && Kld(next) - Kld(cur) < kNegligibleKld) pick = ok[k];
    else break;
  }
  return pick;
}

std::string KldText(const Quality& q) {
  std::string s = q.stories5m != nullptr ? fmt::format("KLD {:.4g} on stories5M", q.stories5m->kld) : "KLD not measured";
  if (q.llama3_8b_kld >= 0) s += fmt::format(", {:.4g} on Llama-3-8B (llama.cpp)", q.llama3_8b_kld);
  return s;
}

std::string Describe(const Estimate& e) {
  std::string s = fmt::format("{}{}: {} file, needs {} ({} free), {:.1f} tok/s decode", e.model.empty() ? "" : e.model + " as ",
                              e.type, HumanBytes(e.file_bytes), HumanBytes(e.memory.total()),
                              HumanBytes(static_cast<uint64_t>(std::max<int64_t>(0, e.headroom_bytes))), e.decode_tok_s);
  if (e.prompt_tok_s) s += fmt::format(", {:.0f} tok/s prompt", *e.prompt_tok_s);
  return s + ", " + KldText(e.quality);
}

// A candidate of `src`: a folder format the model's widths do not allow is a row that says why.
Expected<Estimate> CandidateFor(const ModelSource& src, const std::string& type, const Hardware& hw, const AdviseOptions& o) {
  auto p = src.As(type);
  if (!p.ok() && IsFolderCandidate(type)) {
    Estimate e;
    e.type = type;
    e.quality = FindQuality(type);
    e.error = p.status().message();
    return e;
  }
  if (!p.ok()) return p.status();
  return EstimateFor(*p, hw, o);
}

}  // namespace

Status CheckAdviseInputs(const ModelSource* src, const AdviseOptions& o) {
  for (const std::string& t : o.types) {
    if (!IsFolderCandidate(t)) LOWBIT_RETURN_IF_ERROR(ResolveQuantMix(t).status());
  }
  if (src == nullptr) return OkStatus();
  if (src->has_as_is()) return src->AsIs().status();
  // The model plans and loads (a folder format's width rule is the candidate's row, not an error).
  return src->As(o.types.empty() || IsFolderCandidate(o.types[0]) ? "F16" : o.types[0]).status();
}

Estimate EstimateFor(const PlannedModel& p, const Hardware& hw, const AdviseOptions& o) {
  Estimate e;
  e.type = p.type;
  e.file_bytes = p.folder_bytes > 0 ? p.folder_bytes : p.file_bytes;
  e.quality = FindQuality(p.type);
  e.ctx = o.ctx > 0 ? o.ctx : p.model.config().n_ctx_train;
  if (hw.has_gpu()) EstimateGpu(p, hw, o, &e);
  else if (hw.nodes > 1) EstimateNodes(p, hw, o, &e);
  else EstimateCpu(p, hw, o, &e);
  e.headroom_bytes = static_cast<int64_t>(e.available) - static_cast<int64_t>(e.memory.total());
  e.fits = e.error.empty() && e.headroom_bytes >= 0;
  return e;
}

Expected<Advice> Advise(const ModelSource& src, const Hardware& hw, const AdviseOptions& o) {
  Advice a;
  a.model = src.name();
  a.kind = src.kind();
  a.hardware = hw;
  a.options = o;
  if (src.has_as_is()) {
    LOWBIT_ASSIGN_OR_RETURN(PlannedModel p, src.AsIs());
    a.as_is = EstimateFor(p, hw, o);
  }
  for (const std::string& t : o.types.empty() ? DefaultCandidateTypes() : o.types) {
    LOWBIT_ASSIGN_OR_RETURN(Estimate e, CandidateFor(src, t, hw, o));
    a.candidates.push_back(std::move(e));
  }
  const int pick = Pick(a.candidates, hw);
  if (pick >= 0) {
    a.recommended = static_cast<size_t>(pick);
    a.recommendation = Describe(a.candidates[static_cast<size_t>(pick)]);
  } else {
    // Nothing fits with room to spare: say what the smallest needs.
    const Estimate* smallest = nullptr;
    for (const Estimate& e : a.candidates) {
      if (e.error.empty() && (smallest == nullptr || e.memory.total() < smallest->memory.total())) smallest = &e;
    }
    a.recommendation = smallest == nullptr ? "lowbit cannot run this model"
                                           : fmt::format("nothing fits with {:.0f}% of the memory free: the smallest, {}, needs {} of the {} available "
                                                         "(KV cache {}); try a smaller --ctx, --cache-type f16 or a machine with more memory",
                                                         100 * kFreeFraction, smallest->type, HumanBytes(smallest->memory.total()),
                                                         HumanBytes(smallest->available), HumanBytes(smallest->memory.kv_cache));
  }
  return a;
}

Expected<Advice> RankShapes(const Hardware& given, const AdviseOptions& o) {
  // Dozens of models: the prompt from the per-type GEMM rates, not timed at each one's shapes.
  Hardware hw = given;
  hw.prompt_probe.reset();
  Advice a;
  a.kind = "shapes";
  a.hardware = hw;
  a.options = o;
  struct Best {
    size_t index;
    double params;
  };
  std::vector<Best> best;
  for (const SynthShape& shape : SynthShapes()) {
    if (shape.name == "tiny" || shape.name.starts_with("tiny-") || shape.name == "stories15m") continue;
    const ModelSource src = ModelSource::FromShape(shape);
    const size_t first = a.candidates.size();
    for (const std::string& t : o.types.empty() ? DefaultCandidateTypes() : o.types) {
      LOWBIT_ASSIGN_OR_RETURN(Estimate e, CandidateFor(src, t, hw, o));
      e.model = shape.name;
      a.candidates.push_back(std::move(e));
    }
    const std::vector<Estimate> mine(a.candidates.begin() + static_cast<long>(first), a.candidates.end());
    const int pick = Pick(mine, hw);
    if (pick >= 0) {
      const double params = static_cast<double>(shape.n_layer) * static_cast<double>(shape.n_embd) *
                            static_cast<double>(2 * shape.n_embd + 2 * shape.n_embd * shape.n_head_kv / shape.n_head + 3 * shape.n_ff);
      best.push_back({first + static_cast<size_t>(pick), params});
    }
  }
  // The largest model whose pick decodes at reading speed at least; else the fastest pick.
  std::sort(best.begin(), best.end(), [](const Best& x, const Best& y) { return x.params > y.params; });
  for (const Best& b : best) {
    if (a.candidates[b.index].decode_tok_s >= kReadingSpeedTokS) {
      a.recommended = b.index;
      break;
    }
  }
  if (!a.recommended && !best.empty()) a.recommended = best.back().index;
  a.recommendation = a.recommended ? Describe(a.candidates[*a.recommended]) : "no named model fits this machine";
  return a;
}

}  // namespace lowbit

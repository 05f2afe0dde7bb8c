#include "lowbit/engine/speculative.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "lowbit/engine/prompt_lookup.h"

namespace lowbit {
namespace {

double Since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string Describe(const LlamaModel& m, const Vocab& v) {
  return fmt::format("{}, {} tokens, {} logits", v.model, v.tokens.size(), m.config().n_vocab);
}

double WeightBytes(const LlamaModel& m) {
  auto bytes = [](const WeightView& w) {
    return static_cast<double>(RowBytes(w.type, static_cast<uint64_t>(w.cols)).value_or(0)) * static_cast<double>(w.rows);
  };
  double b = bytes(m.output);
  for (const auto& L : m.layers) {
    for (const WeightView* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.gate, &L.up, &L.down}) b += bytes(*w);
  }
  return b;
}

// Drafts from a smaller model. Its KV cache holds kv_ (the tokens at positions 0..); each round it
// runs what of the text it has not seen, then drafts one token per forward.
class ModelDrafter {
 public:
  ModelDrafter(const LlamaModel& m, const GenerateOptions& o, int64_t n_ctx, ThreadPool* pool)
      : n_vocab_(m.config().n_vocab),
        session_(m, SessionOptions{.n_ctx = n_ctx, .threads = o.threads, .max_batch = std::min<int64_t>(n_ctx, 512),
                                   .kv_f16 = o.kv_f16, .pool = pool}),
        sampler_(DraftParams(o.sampling), n_vocab_),
        greedy_(o.sampling.temp <= 0),
        logits_(static_cast<size_t>(n_vocab_)) {}

  // Up to k tokens continuing `text`, and the distribution each was drawn from (q).
  void Draft(const std::vector<int32_t>& text, int k, std::vector<int32_t>* out, std::vector<TokenDist>* qs) {
    out->clear();
    if (k <= 0) return;
    size_t same = 0;
    while (same < kv_.size() && same < text.size() && kv_[same] == text[same]) ++same;
    same = std::min(same, text.size() - 1);  // the last token runs again for its logits
    const float* l = session_.Forward(std::span<const int32_t>(text).subspan(same), static_cast<int64_t>(same));
    kv_.assign(text.begin(), text.end());
    recent_ = text;
    for (int j = 0; j < k; ++j) {
      std::copy(l, l + n_vocab_, logits_.begin());
      if (qs->size() <= static_cast<size_t>(j)) qs->emplace_back();
      TokenDist& q = (*qs)[static_cast<size_t>(j)];
      sampler_.Distribution(logits_.data(), recent_, &q);
      const int32_t d = greedy_ ? q[0].first : sampler_.Draw(q);
      out->push_back(d);
      recent_.push_back(d);
      if (j + 1 == k || static_cast<int64_t>(kv_.size()) + 1 >= session_.n_ctx()) break;
      l = session_.Forward(d, static_cast<int64_t>(kv_.size()));
      kv_.push_back(d);
    }
  }
  void Prefill(const std::vector<int32_t>& prompt) {
    session_.Forward(prompt, 0);
    kv_ = prompt;
  }

 private:
  static SamplerParams DraftParams(SamplerParams p) {
    p.seed = p.seed * 0x9e3779b97f4a7c15ull + 1;  // its own stream, still fixed by --seed
    return p;
  }
  int64_t n_vocab_;
  LlamaSession session_;
  Sampler sampler_;
  bool greedy_;
  std::vector<float> logits_;
  std::vector<int32_t> kv_, recent_;
};

}  // namespace

DraftLength DraftLengthFor(const SpeculativeOptions& so, const LlamaModel& target, bool timed) {
  constexpr int kDraftModelProbes = 2;  // failed probes in a row after which a draft model stops probing
  // Without timing, a drafted token costs the ratio of the two models' weight bytes.
  DraftLength length(so.draft_min, so.draft_max, so.adaptive, timed,
                     so.draft != nullptr ? WeightBytes(*so.draft) / std::max(1.0, WeightBytes(target)) : 0.0);
  if (so.draft != nullptr) length.GiveUpAfterFailedProbes(kDraftModelProbes);
  return length;
}

SamplerParams BatchDrafter::DraftParams(SamplerParams p) {
  p.seed = p.seed * 0x9e3779b97f4a7c15ull + 1;  // the stream ModelDrafter draws from
  return p;
}

BatchDrafter::BatchDrafter(const LlamaModel& draft, const SessionOptions& o)
    : session_(draft, o), n_vocab_(draft.config().n_vocab), kv_(static_cast<size_t>(std::max(1, o.n_seq))),
      logits_(static_cast<size_t>(n_vocab_)) {}

void BatchDrafter::Draft(std::span<Job> jobs) {
  batch_.clear();
  rows_.clear();
  if (recent_.size() < jobs.size()) recent_.resize(jobs.size());
  for (size_t j = 0; j < jobs.size(); ++j) {
    Job& job = jobs[j];
    job.out->clear();
    const std::vector<int32_t>& text = *job.text;
    if (job.k <= 0 || text.empty()) continue;
    std::vector<int32_t>& kv = kv_[static_cast<size_t>(job.seq)];
    size_t same = 0;
    while (same < kv.size() && same < text.size() && kv[same] == text[same]) ++same;
    same = std::min(same, text.size() - 1);  // the last token runs again for its logits
    for (size_t i = same; i < text.size(); ++i) batch_.push_back({text[i], job.seq, static_cast<int64_t>(i), i + 1 == text.size()});
    kv.assign(text.begin(), text.end());
    recent_[j] = text;
    rows_.push_back(j);
  }
  while (!batch_.empty()) {
    const float* l = session_.ForwardBatch(batch_);
    batch_.clear();
    next_rows_.clear();
    for (size_t r = 0; r < rows_.size(); ++r) {
      Job& job = jobs[rows_[r]];
      std::vector<int32_t>& recent = recent_[rows_[r]];
      std::copy(l + static_cast<int64_t>(r) * n_vocab_, l + static_cast<int64_t>(r + 1) * n_vocab_, logits_.begin());
      const size_t i = job.out->size();
      if (job.qs->size() <= i) job.qs->emplace_back();
      TokenDist& q = (*job.qs)[i];
      job.sampler->Distribution(logits_.data(), recent, &q);
      const int32_t d = q.size() == 1 ? q[0].first : job.sampler->Draw(q);
      job.out->push_back(d);
      recent.push_back(d);
      std::vector<int32_t>& kv = kv_[static_cast<size_t>(job.seq)];
      if (static_cast<int>(job.out->size()) < job.k && static_cast<int64_t>(kv.size()) + 1 < session_.n_ctx()) {
        batch_.push_back({d, job.seq, static_cast<int64_t>(kv.size()), true});
        kv.push_back(d);
        next_rows_.push_back(rows_[r]);
      }
    }
    rows_.swap(next_rows_);
  }
}

Status CheckDraftVocabulary(const std::string& target_name, const LlamaModel& target, const Vocab& target_vocab,
                            const std::string& draft_name, const LlamaModel& draft, const Vocab& draft_vocab) {
  const std::string both = fmt::format("the draft model {} has vocabulary ({}), the model {} has ({})", draft_name,
                                       Describe(draft, draft_vocab), target_name, Describe(target, target_vocab));
  if (target.config().n_vocab != draft.config().n_vocab || target_vocab.tokens.size() != draft_vocab.tokens.size() ||
      target_vocab.model != draft_vocab.model) {
    return Errorf("{}; a draft model must have the same vocabulary", both);
  }
  for (size_t i = 0; i < target_vocab.tokens.size(); ++i) {
    if (target_vocab.tokens[i] != draft_vocab.tokens[i]) {
      return Errorf("{}, but token {} is '{}' in the draft and '{}' in the model; a draft model must have the same vocabulary",
                    both, i, draft_vocab.tokens[i], target_vocab.tokens[i]);
    }
  }
  if (target_vocab.eos_id != draft_vocab.eos_id || target_vocab.bos_id != draft_vocab.bos_id) {
    return Errorf("{}, but their BOS/EOS ids differ ({}/{} and {}/{}); a draft model must have the same vocabulary", both,
                  draft_vocab.bos_id, draft_vocab.eos_id, target_vocab.bos_id, target_vocab.eos_id);
  }
  return OkStatus();
}

DraftLength::DraftLength(int draft_min, int draft_max, bool adaptive, bool timed, double draft_cost)
    : min_(std::max(1, draft_min)),
      max_(std::max(std::max(1, draft_min), draft_max)),
      adaptive_(adaptive),
      timed_(timed),
      allow_zero_(draft_min <= 0),
      draft_cost_(draft_cost) {}

double DraftLength::accept_rate() const {
  // Accepted drafts before each rejection: a geometric count, whose rate estimate is acc / (acc + rej).
  // Prior: 2 accepted, 1 rejected (a = 2/3) until rounds are seen.
  return (acc_ + 2.0) / (acc_ + rej_ + 3.0);
}

void DraftLength::Restart() {
  acc_ = rej_ = 0;
  idle_ = 0;
  failed_probes_ = 0;
}

namespace {
// The guess for a checked batch of n tokens, in one-token steps, before it is timed.
double PriorCost(int n) { return 1.0 + 0.1 * (n - 1); }
// v[m], 0 past its end (a size not timed).
double At(const std::vector<double>& v, int m) { return static_cast<size_t>(m) < v.size() ? v[static_cast<size_t>(m)] : 0.0; }

// The least v[m] / PriorCost(m) over the timed sizes m >= from (0: none timed): the cheapest timed
// size's cost per guess, the optimistic base of an untimed size's guess.
double CheapestPerGuess(const std::vector<double>& v, size_t from) {
  double base = 0;
  for (size_t m = from; m < v.size(); ++m) {
    const double c = v[m] / PriorCost(static_cast<int>(m));
    if (v[m] > 0 && (base == 0 || c < base)) base = c;
  }
  return base;
}
}  // namespace

double DraftLength::BatchCost(int n) const {
  if (!timed_) return PriorCost(n);
  const double t1 = At(time_, 1);
  if (t1 > 0) {  // sizes as multiples of the plain step, which is timed often
    if (n == 1) return t1;
    if (At(ratio_, n) > 0) return t1 * At(ratio_, n);
    const double base = CheapestPerGuess(ratio_, 2);
    return t1 * (base > 0 ? std::min(base, 1.0) : 1.0) * PriorCost(n);
  }
  // No plain step timed (--draft-min above 0): the sizes' own times.
  if (At(time_, n) > 0) return At(time_, n);
  const double base = CheapestPerGuess(time_, 1);
  return (base > 0 ? base : 1.0) * PriorCost(n);
}

// ratio_[n] is only ever set beside time_[n].
bool DraftLength::Measured(int n) const { return At(time_, n) > 0; }

double DraftLength::TokenDraftCost() const {
  if (!timed_) return draft_cost_ * BatchCost(1);
  return drafted_ > 0 ? draft_s_ / drafted_ : 0.0;
}

double DraftLength::MinDraftProb(int k, int others) const {
  if (!adaptive_ || k <= 0) return 0;
  const double t1 = BatchCost(1);
  // The check's added cost per token from the largest measured batch of at most k + 1 tokens (the
  // guess for an unmeasured size is optimistic on purpose, to get it tried, which would let every
  // weak draft through): drafts cut short by this threshold are the sizes that get measured.
  double added = 0.1;
  if (timed_ && Measured(1)) {
    for (int n = k + 1; n >= 2; --n) {
      if (Measured(n)) {
        added = std::max(0.0, (BatchCost(n) - t1) / (n - 1) / t1);
        break;
      }
    }
  }
  return (1 + std::max(others, 0)) * (added + TokenDraftCost() / t1);
}

int DraftLength::Next(int others) const {
  if (!adaptive_) return max_;
  // The plain step's time is what every draft is weighed against, and rounds that draft never
  // measure it (a guess from the checks' times made it 1.8x too dear on stories5M Q8_0, so drafts
  // that lost time looked like gains): the first two rounds, and one in kT1Every after, are plain.
  if (timed_ && allow_zero_ && (t1_samples_ < 2 || since_t1_ >= kT1Every)) return 0;
  const double a = std::min(accept_rate(), 0.999);
  const double t1 = BatchCost(1);
  const double td = TokenDraftCost();
  int best = 0;
  // k = 0: a plain step, no drafting; after 15 of them a probe drafts (unless probes gave up).
  const bool probe = idle_ >= kProbeAfter && (give_up_ <= 0 || failed_probes_ < give_up_);
  const double rest = std::max(others, 0);  // tokens the other sequences' rows yield per step
  double best_rate = allow_zero_ && !probe ? (rest + 1.0) / t1 : -1;
  for (int k = min_; k <= max_; ++k) {
    const double tokens = (1.0 - std::pow(a, k + 1)) / (1.0 - a);
    const double rate = (rest + tokens) / (BatchCost(k + 1) + td * k);
    if (rate > best_rate) {
      best_rate = rate;
      best = k;
    }
  }
  return best;
}

void DraftLength::Update(int drafted, int accepted, double forward_s, double draft_s) {
  constexpr double kDecay = 0.95;  // about the last 20 rounds
  if (accepted > 0) failed_probes_ = 0;
  else if (drafted > 0 && idle_ >= kProbeAfter) ++failed_probes_;  // a probe that accepted nothing
  idle_ = drafted > 0 ? 0 : idle_ + 1;
  if (drafted > 0) {
    acc_ = acc_ * kDecay + accepted;
    rej_ = rej_ * kDecay + (accepted < drafted ? 1.0 : 0.0);
    if (draft_s >= 0) {  // < 0: this round's drafting time is not a drafting cost
      draft_s_ = draft_s_ * kDecay + draft_s;
      drafted_ = drafted_ * kDecay + drafted;
    }
  }
  if (forward_s < 0) return;  // not timed (the server's step also read prompts)
  if (drafted > 0) {
    ++since_t1_;
  } else {
    since_t1_ = 0;
    ++t1_samples_;
  }
  const auto n = static_cast<size_t>(drafted + 1);
  if (time_.size() <= n) {
    time_.resize(n + 1, 0.0);
    ratio_.resize(n + 1, 0.0);
    seen_.resize(n + 1, false);
  }
  // A size looks dear after one slow timing, is then not chosen, so never timed again: drafting
  // could stop for the rest of a text, or of a server's life. Three causes, three rules. The first
  // step of a batch size allocates its scratch and touches new pages: its time is not counted. A
  // step is now and then preempted on a shared host: each estimate is the lower envelope of its
  // samples, rising at most 5% a sample. And a server warms up (steps got 6x faster over its first
  // dozens): sizes are kept as multiples of the plain step, which is timed often, so they follow.
  if (!seen_[n]) {
    seen_[n] = true;
    return;
  }
  const auto envelope = [](double est, double x) { return est > 0 ? std::min(x, 1.05 * est) : x; };
  if (n >= 2 && time_[1] > 0) ratio_[n] = envelope(ratio_[n], forward_s / time_[1]);
  time_[n] = envelope(time_[n], forward_s);
}

Expected<GenerateStats> GenerateSpeculative(LlamaSession& session, const LlamaModel& model, ThreadPool* pool, const Vocab& vocab,
                                            const Tokenizer& tok, const GenerateOptions& o, Sampler& sampler,
                                            GenerateStats st, const float* first,
                                            const std::function<void(const std::string&)>& on_text) {
  const SpeculativeOptions& so = o.spec;
  const int64_t n_ctx = session.n_ctx();
  const auto n_prompt = static_cast<int64_t>(st.prompt_tokens.size());
  // What plain decoding produces at most: n_predict tokens, each run at a position below n_ctx.
  const int64_t limit = std::min(o.n_predict, n_ctx - n_prompt);
  std::vector<int32_t> history = st.prompt_tokens;
  history.reserve(static_cast<size_t>(n_ctx));
  std::optional<PromptLookup> lookup;
  if (so.lookup) {
    lookup.emplace(so.ngram_min, so.ngram_max);
    lookup->Add(history);
  }
  std::unique_ptr<ModelDrafter> drafter;
  if (so.draft != nullptr) {
    // The draft model reads the prompt too: prompt time, as llama-speculative counts it.
    const auto t_prompt = std::chrono::steady_clock::now();
    drafter = std::make_unique<ModelDrafter>(*so.draft, o, n_ctx, pool);
    drafter->Prefill(history);
    st.prompt_seconds += Since(t_prompt);
  }
  const auto t_start = std::chrono::steady_clock::now();
  const bool greedy = o.sampling.temp <= 0;
  const int64_t V = model.config().n_vocab;
  std::vector<float> logits(static_cast<size_t>(V));
  bool done = false;
  // Appends a sampled token; false when generation ends with it (end of text or the limit).
  auto emit = [&](int32_t t) {
    if (t == vocab.eos_id) {
      st.stopped_at_eos = true;
      return false;
    }
    st.generated.push_back(t);
    history.push_back(t);
    if (lookup) lookup->Add(std::span<const int32_t>(&t, 1));
    if (on_text) on_text(tok.Decode(t));
    return static_cast<int64_t>(st.generated.size()) < limit;
  };
  if (limit > 0) {
    std::copy(first, first + V, logits.begin());
    done = !emit(sampler.Sample(logits.data(), history));
  } else {
    done = true;
  }
  session.set_batch_invariant(true);
  DraftLength length = DraftLengthFor(so, model, greedy);
  std::vector<int32_t> drafts, batch;
  std::vector<TokenDist> qs;
  TokenDist p, point(1);
  int64_t pos = n_prompt;  // where history.back() goes: the KV cache holds history[0, pos)
  while (!done) {
    const int64_t room = limit - static_cast<int64_t>(st.generated.size()) - 1;  // drafts beyond which nothing is kept
    const int k = static_cast<int>(std::min<int64_t>(length.Next(), room));
    const auto t_draft = std::chrono::steady_clock::now();
    if (lookup) lookup->Draft(k, length.MinDraftProb(k), &drafts);
    else drafter->Draft(history, k, &drafts, &qs);
    const double draft_s = Since(t_draft);
    if (static_cast<int>(drafts.size()) < so.draft_min) drafts.clear();
    batch.assign(1, history.back());
    batch.insert(batch.end(), drafts.begin(), drafts.end());
    const auto t_fwd = std::chrono::steady_clock::now();
    const float* out = session.Forward(batch, pos, /*all_logits=*/true);
    const double forward_s = Since(t_fwd);
    ++st.forwards;
    int n_acc = 0;
    for (size_t i = 0; i <= drafts.size(); ++i) {
      std::copy(out + i * V, out + (i + 1) * V, logits.begin());
      int32_t t;
      bool accepted = false;
      if (i == drafts.size()) {
        t = sampler.Sample(logits.data(), history);  // every draft accepted: the next token is free
      } else if (greedy) {
        t = sampler.Sample(logits.data(), history);
        accepted = t == drafts[i];
      } else {
        sampler.Distribution(logits.data(), history, &p);
        const TokenDist* q = &point;
        if (lookup) point[0] = {drafts[i], 1.0f};
        else q = &qs[i];
        t = sampler.AcceptOrResample(p, *q, drafts[i], &accepted);
      }
      n_acc += accepted ? 1 : 0;
      if (!emit(t)) {
        done = true;
        break;
      }
      if (!accepted) break;
    }
    st.drafted += static_cast<int64_t>(drafts.size());
    st.accepted += n_acc;
    length.Update(static_cast<int>(drafts.size()), n_acc, forward_s, draft_s);
    if (lookup) lookup->Checked(static_cast<int>(drafts.size()), n_acc);
    pos += 1 + n_acc;
  }
  st.generate_seconds = Since(t_start);
  return st;
}

Expected<SpecBenchResult> BenchSpeculative(const LlamaModel& model, const Vocab& vocab, const SpecBenchOptions& o) {
  if (!o.spec.enabled()) return Errorf("speculative bench without a drafter (--lookup or --model-draft)");
  if (o.reps < 1) return Errorf("-r must be at least 1");
  GenerateOptions g{.prompt = o.prompt, .n_predict = o.n_gen, .n_ctx = o.n_ctx, .threads = o.threads, .kv_f16 = o.kv_f16};
  g.sampling.temp = 0;
  GenerateOptions s = g;
  s.spec = o.spec;
  SpecBenchResult r;
  std::vector<double> plain, spec;
  for (int rep = -1; rep < o.reps; ++rep) {  // rep -1: warm-up
    LOWBIT_ASSIGN_OR_RETURN(GenerateStats a, Generate(model, vocab, g, nullptr));
    LOWBIT_ASSIGN_OR_RETURN(GenerateStats b, Generate(model, vocab, s, nullptr));
    r.identical = r.identical && a.generated == b.generated;
    if (rep < 0) continue;
    plain.push_back(static_cast<double>(a.generated.size()) / a.generate_seconds);
    spec.push_back(static_cast<double>(b.generated.size()) / b.generate_seconds);
    r.prompt_tokens = static_cast<int64_t>(b.prompt_tokens.size());
    r.generated = static_cast<int64_t>(b.generated.size());
    r.drafted = b.drafted;
    r.accepted = b.accepted;
    r.forwards = b.forwards;
    if (o.spec.lookup && rep == 0) r.lookup_bound = PromptLookupBound(a.prompt_tokens, a.generated, o.spec.draft_max);  // greedy: the same text every rep
  }
  auto mean_std = [](const std::vector<double>& v, double* mean, double* sd) {
    double s1 = 0, s2 = 0;
    for (double x : v) s1 += x;
    *mean = s1 / static_cast<double>(v.size());
    for (double x : v) s2 += (x - *mean) * (x - *mean);
    *sd = v.size() > 1 ? std::sqrt(s2 / static_cast<double>(v.size() - 1)) : 0.0;
  };
  mean_std(plain, &r.tg_plain, &r.tg_plain_std);
  mean_std(spec, &r.tg_spec, &r.tg_spec_std);
  return r;
}

}  // namespace lowbit

// Speculative decoding. A drafter proposes k tokens (prompt lookup: engine/prompt_lookup.h; or a
// smaller draft model with the same vocabulary), the target model runs the last accepted token and
// the k drafts as one batch (one pass over the weights for k + 1 positions; the KV cache is
// rewound over rejected positions by writing past them), and each draft is checked against the
// target's distribution at its position with Sampler::AcceptOrResample, the standard rejection rule:
// the text is distributed as the target's; with greedy sampling it is plain greedy decoding's,
// token for token. For that the check batches run with batch-invariant products
// (SessionOptions::batch_invariant), so that each position's logits are the bits a one-token
// decode computes; the prompt is prefilled exactly as plain decoding does it.
//
// The draft length adapts: with the accept rate a (per drafted token, decayed over rounds), the
// measured cost T(n) of a checked batch of n tokens and a drafted token's cost td, each round drafts
// the k in [draft_min, draft_max] that maximizes the expected tokens per second
// (1 - a^(k+1)) / (1 - a) / (T(k + 1) + k td). T(n) is kept per batch size, as a multiple of the plain
// step's time (the lower envelope of its timings after the first, rising at most 5% a sample, so that
// a cold, preempted or warming-up step does not shut a size out), because the
// cost is not linear in n: below 8 tokens the products run the one-token kernels once per token,
// from 8 on the GEMM kernels, which cost less per token. A size not yet measured is assumed to cost
// (1 + 0.1 (n - 1)) times the cheapest measured per-size base, an optimistic guess that gets it
// tried (and measured) once. k = 0 (a plain step) wins when drafts are rarely accepted; every 16th
// such round drafts one token anyway, so that the accept rate can recover. T(1), which every draft
// is weighed against, is measured by plain steps: the first two rounds and one in 64 after. With sampling the costs are fixed estimates instead of timings (the
// weight bytes of draft and target), so that --seed reproduces the text.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/engine/generate.h"
#include "lowbit/model/llama.h"
#include "lowbit/sampling/sampler.h"
#include "lowbit/tokenizer/tokenizer.h"
#include "lowbit/tokenizer/vocab.h"

namespace lowbit {

// OK when a draft model can draft for the target: the same number of logits and the same tokens.
// Otherwise one line naming both files and both vocabularies.
Status CheckDraftVocabulary(const std::string& target_name, const LlamaModel& target, const Vocab& target_vocab,
                            const std::string& draft_name, const LlamaModel& draft, const Vocab& draft_vocab);

// The draft length controller (exposed for tests).
class DraftLength {
 public:
  // `timed`: costs from the measured times; otherwise (sampling, where the draft length decides
  // how many random numbers are drawn, so it must not depend on timing for --seed to reproduce a
  // text) a checked token costs 0.1 of a forward and a drafted one `draft_cost` of it.
  DraftLength(int draft_min, int draft_max, bool adaptive, bool timed = true, double draft_cost = 0);
  // `others`: sequences whose tokens share the check's batch (the server's other generating slots),
  // each yielding about one token a step; the draft length that maximizes the step's tokens per
  // second, all of them counted (0: one sequence alone, as run and bench).
  int Next(int others = 0) const;
  double BatchCost(int n) const;  // T(n) as Next sees it (relative units without timing)
  // What one more drafted token costs, relative to a plain step, in a draft of up to k: the added
  // check cost per token (T(n) - T(1)) / (n - 1) of the largest timed batch n <= k + 1 (0.1 before
  // any is timed, and without timing) plus drafting, over T(1). A drafted token pays when its chance
  // of acceptance is at least that (prompt lookup cuts its drafts there). 0 when not adaptive. With
  // `others` sequences beside it in the step (as Next), (others + 1) times that: the step yields
  // about others + 1 tokens, so one token is worth that fraction of the step's time.
  double MinDraftProb(int k, int others = 0) const;
  // A round: `drafted` tokens drafted, `accepted` of them accepted, the check forward of
  // drafted + 1 tokens took `forward_s` seconds (< 0: not timed, only the accept rate counts),
  // drafting `draft_s` (< 0: not a drafting cost, e.g. the draft model read a new prompt).
  void Update(int drafted, int accepted, double forward_s, double draft_s);
  double accept_rate() const;
  // After `n` probes in a row (the draft every 16th plain step) accept nothing, stop probing until
  // Restart (0: never stop; the default). For a draft model, whose probe first runs every token
  // generated since the last one through the draft model, so that probing a drafter that never
  // agrees costs a draft-model prefill of the whole text; a prompt lookup probe costs nothing.
  void GiveUpAfterFailedProbes(int n) { give_up_ = n; }
  // A new text with the same models and machine: the accept rate starts again from its prior, the
  // measured costs stay (the server keeps a slot's controller from one request to the next).
  void Restart();

 private:
  double TokenDraftCost() const;  // seconds (relative units without timing) to draft one token
  bool Measured(int n) const;     // a checked batch of n tokens has been timed

  int min_, max_;
  bool adaptive_, timed_, allow_zero_;
  int idle_ = 0;  // rounds since the last one that drafted
  static constexpr int kProbeAfter = 15;  // plain rounds after which one drafts anyway (a probe)
  int give_up_ = 0, failed_probes_ = 0;  // GiveUpAfterFailedProbes; probes in a row that accepted nothing
  static constexpr int kT1Every = 64;     // timed rounds between plain steps that time T(1)
  int t1_samples_ = 0, since_t1_ = 0;     // timed plain steps so far; timed drafting rounds since the last
  double draft_cost_;
  double acc_ = 0, rej_ = 0;                                 // decayed counts: accepted drafts, rejections
  std::vector<double> time_;                                 // [n]: seconds of a checked batch of n tokens (lower envelope); 0: not measured
  std::vector<double> ratio_;                                // [n], n >= 2: the same over the plain step's time then (lower envelope); 0: not measured
  std::vector<bool> seen_;                                   // [n]: a first step of n tokens ran (its time is not counted)
  double draft_s_ = 0, drafted_ = 0;                         // decayed drafting time and tokens
};

// The draft length controller of a request with drafter `so` for `target` (run, bench and each
// server slot): `timed` as DraftLength's; with a draft model, a drafted token costs the two models'
// weight bytes' ratio without timing, and probes give up after two fail in a row.
DraftLength DraftLengthFor(const SpeculativeOptions& so, const LlamaModel& target, bool timed);

// A draft model drafting for several sequences at once (the server's slots): its session holds one
// KV sequence per slot. Each call first runs, in one batch, what of each sequence's text its cache
// does not hold (the tokens accepted since, or a new request's prompt past the common prefix), then
// one batched forward per drafted position over the sequences still drafting. The session is
// batch-invariant, so a sequence's drafts do not depend on the others (a seed reproduces its text).
class BatchDrafter {
 public:
  BatchDrafter(const LlamaModel& draft, const SessionOptions& o);
  struct Job {
    int seq = 0;
    const std::vector<int32_t>* text = nullptr;  // the sequence's text so far (at least one token)
    int k = 0;                                   // tokens to draft (fewer at the context's end)
    Sampler* sampler = nullptr;                  // the sequence's draft sampler (greedy: argmax)
    std::vector<int32_t>* out = nullptr;         // the drafts
    std::vector<TokenDist>* qs = nullptr;        // [i]: the distribution out[i] was drawn from
  };
  void Draft(std::span<Job> jobs);
  // A sampler for a request's drafts: its settings, its own stream of random numbers (fixed by the seed).
  static SamplerParams DraftParams(SamplerParams p);

 private:
  LlamaSession session_;
  int64_t n_vocab_;
  std::vector<std::vector<int32_t>> kv_;  // [seq]: the tokens whose K/V the session holds
  std::vector<std::vector<int32_t>> recent_;  // [job]: text + drafts (what the penalties see)
  std::vector<BatchToken> batch_;
  std::vector<size_t> rows_, next_rows_;  // the job of each logits row
  std::vector<float> logits_;
};

// The generation loop after the prompt (called by Generate; `first` are the prompt's last logits).
// The draft model's session shares `pool` with the target's.
Expected<GenerateStats> GenerateSpeculative(LlamaSession& session, const LlamaModel& model, ThreadPool* pool, const Vocab& vocab,
                                            const Tokenizer& tok, const GenerateOptions& o, Sampler& sampler,
                                            GenerateStats st, const float* first,
                                            const std::function<void(const std::string&)>& on_text);

// `lowbit bench` with a drafter: greedy generation of n_gen tokens after `prompt`, plain and
// speculative in alternation, `reps` times each (a warm-up of each first).
struct SpecBenchOptions {
  std::string prompt;
  int64_t n_gen = 128;
  int64_t n_ctx = 0;
  int threads = 1;
  int reps = 3;
  bool kv_f16 = false;
  SpeculativeOptions spec;
};
struct SpecBenchResult {
  double tg_plain = 0, tg_plain_std = 0, tg_spec = 0, tg_spec_std = 0;  // generated tokens per second
  int64_t prompt_tokens = 0, generated = 0;  // per run (the spec runs')
  int64_t drafted = 0, accepted = 0, forwards = 0;  // per run (the last spec run)
  // With prompt lookup: PromptLookupBound of the plain run's text (any n-gram lookup drafter needs
  // at least this many forwards; plain decoding takes generated - 1). 0 with a draft model.
  int64_t lookup_bound = 0;
  bool identical = true;  // every speculative run's tokens equal the plain run's
};
Expected<SpecBenchResult> BenchSpeculative(const LlamaModel& model, const Vocab& vocab, const SpecBenchOptions& o);

}  // namespace lowbit

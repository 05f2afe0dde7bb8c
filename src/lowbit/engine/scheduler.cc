#include "lowbit/engine/scheduler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "lowbit/base/check.h"
#include "lowbit/engine/prompt_lookup.h"
#include "lowbit/engine/speculative.h"
#include "lowbit/engine/text_stream.h"

namespace lowbit {

bool RequestChannel::Next(GenerationEvent* ev, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lk(mu_);
  if (!cv_.wait_for(lk, timeout, [&] { return !events_.empty(); })) return false;
  *ev = std::move(events_.front());
  events_.pop_front();
  return true;
}

void RequestChannel::Push(GenerationEvent ev) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    events_.push_back(std::move(ev));
  }
  cv_.notify_one();
}

struct Scheduler::Slot {
  int id = 0;
  std::vector<int32_t> cached;  // tokens whose K/V this slot holds, positions 0..size-1
  uint64_t last_used = 0;
  bool active = false;
  GenerationRequest req;
  std::shared_ptr<RequestChannel> ch;
  size_t fed = 0;               // prompt tokens in the cache
  bool generating = false;
  int32_t next = -1;            // sampled, not in the cache yet
  std::unique_ptr<Sampler> sampler;
  std::vector<int32_t> history;  // prompt + generated: what the penalties look at
  TextStream text;
  std::vector<TokenLogprob> pending;  // tokens not reported yet
  int64_t generated = 0, cached_prompt = 0;
  // Speculative decoding: the n-grams of history (made at the first draft), the draft length,
  // this step's drafts (in the batch after `next`), and the request's counts.
  std::optional<PromptLookup> lookup;
  std::optional<DraftLength> length;
  bool length_timed = false;
  std::unique_ptr<Sampler> draft_sampler;  // draft model: the drafts' sampler
  std::vector<TokenDist> qs;               // draft model: the distribution each draft was drawn from
  int k = 0;                               // drafts wanted this step
  std::vector<int32_t> drafts;
  double draft_s = 0;                      // this step's drafting time (< 0: not a drafting cost)
  bool draft_primed = false;               // draft model: its cache holds this request's prompt
  int64_t drafted = 0, accepted = 0;
};

namespace {

// Tokens a step may carry: at least every slot's token and, with speculative decoding, its drafts
// (so that a slot's draft length never depends on what else runs).
int64_t StepTokens(const SchedulerOptions& o) {
  const int64_t per_slot = o.spec.enabled() ? 1 + std::max(0, o.spec.draft_max) : 1;
  return std::max<int64_t>(o.max_batch, per_slot * std::max(1, o.n_slots));
}

}  // namespace

SessionOptions SchedulerSessionOptions(SchedulerOptions o) {
  o.n_slots = std::max(1, o.n_slots);
  return SessionOptions{.n_ctx = o.n_ctx, .threads = o.threads, .max_batch = StepTokens(o),
                        .kv_f16 = o.kv_f16, .comm = o.comm, .n_seq = o.n_slots, .batch_invariant = true};
}

Status FollowScheduler(const LlamaModel& model, const SchedulerOptions& o) {
  if (o.comm == nullptr || o.comm->rank() == 0) return Errorf("FollowScheduler runs on the ranks other than 0");
  LlamaSession session(model, SchedulerSessionOptions(o));
  std::vector<BatchToken> batch;
  const int64_t most = SchedulerSessionOptions(o).max_batch;
  while (true) {
    int64_t n = 0;
    o.comm->WaitBroadcast(&n, sizeof(n), 0);
    if (n < 0) return OkStatus();
    if (n == 0 || n > most) return Errorf("rank 0 sent a step of {} tokens (at most {} expected): the ranks disagree on the options", n, most);
    batch.resize(static_cast<size_t>(n));
    o.comm->Broadcast(batch.data(), batch.size() * sizeof(BatchToken), 0);
    session.ForwardBatch(batch);
  }
}

namespace {

size_t CommonPrefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

// Texts of the tokens that end a turn in the common chat formats (llama.cpp's end-of-generation
// set), used where the vocabulary has them as control tokens.
constexpr const char* kEndOfTurn[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
                                      "<|EOT|>", "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>", "<|end_of_text|>"};

}  // namespace

Scheduler::Scheduler(const LlamaModel& model, const Tokenizer& tokenizer, const Vocab& vocab, const SchedulerOptions& o)
    : model_(model), tok_(tokenizer), vocab_(vocab), o_(o) {
  o_.n_slots = std::max(1, o_.n_slots);
  o_.max_batch = StepTokens(o_);
  o_.prompt_chunk = std::max<int64_t>(1, o_.prompt_chunk);
  SessionOptions so = SchedulerSessionOptions(o_);
  if (o_.spec.draft != nullptr) {  // the two sessions run one after the other on the same threads
    pool_ = std::make_unique<ThreadPool>(o_.threads);
    so.pool = pool_.get();
    drafter_ = std::make_unique<BatchDrafter>(*o_.spec.draft, so);
  }
  session_ = std::make_unique<LlamaSession>(model_, so);
  for (int i = 0; i < o_.n_slots; ++i) {
    slots_.push_back(std::make_unique<Slot>());
    slots_.back()->id = i;
  }
  if (vocab.eos_id >= 0) eog_.push_back(static_cast<int32_t>(vocab.eos_id));
  for (size_t t = 0; t < vocab.tokens.size(); ++t) {
    const bool control = t < vocab.token_types.size() && vocab.token_types[t] == static_cast<int32_t>(TokenType::kControl);
    if (!control) continue;
    for (const char* e : kEndOfTurn) {
      if (vocab.tokens[t] == e && std::find(eog_.begin(), eog_.end(), static_cast<int32_t>(t)) == eog_.end()) eog_.push_back(static_cast<int32_t>(t));
    }
  }
  logits_.resize(static_cast<size_t>(model.config().n_vocab));
  point_.resize(1);
  batch_.reserve(static_cast<size_t>(o_.max_batch));
  owners_.reserve(static_cast<size_t>(o_.max_batch));
  metrics_.slots = o_.n_slots;
  metrics_.kv_capacity = o_.n_ctx * o_.n_slots;
  thread_ = std::thread([this] { Loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  if (Leading()) {  // the other ranks leave FollowScheduler
    int64_t n = -1;
    o_.comm->WaitBroadcast(&n, sizeof(n), 0);
  }
}

bool Scheduler::Leading() const { return o_.comm != nullptr && o_.comm->size() > 1; }

std::string Scheduler::TokenText(int32_t t) const {
  if (t >= 0 && static_cast<size_t>(t) < vocab_.token_types.size() && vocab_.token_types[t] == static_cast<int32_t>(TokenType::kControl)) return {};
  return tok_.Decode(t);
}

bool Scheduler::IsEog(int32_t t) const { return std::find(eog_.begin(), eog_.end(), t) != eog_.end(); }

Expected<std::shared_ptr<RequestChannel>> Scheduler::Submit(GenerationRequest r) {
  const auto n = static_cast<int64_t>(r.prompt.size());
  if (n == 0) return Errorf("the prompt is empty");
  if (n >= o_.n_ctx) return Errorf("the prompt has {} tokens, a slot's context holds {}", n, o_.n_ctx);
  if (r.max_tokens >= 0 && n + r.max_tokens > o_.n_ctx) {
    return Errorf("{} prompt tokens + max_tokens {} exceed a slot's context of {}", n, r.max_tokens, o_.n_ctx);
  }
  auto ch = std::make_shared<RequestChannel>();
  {
    std::lock_guard<std::mutex> lk(mu_);
    const int free_slots = o_.n_slots - metrics_.slots_busy;
    if (static_cast<int64_t>(queue_.size()) >= free_slots + o_.max_queue) {
      return Errorf("busy: {} requests are waiting for {} slots", queue_.size(), o_.n_slots);
    }
    queue_.push_back({std::move(r), ch});
    metrics_.queued = static_cast<int>(queue_.size());
  }
  cv_.notify_all();
  return ch;
}

SchedulerMetrics Scheduler::Metrics() const {
  std::lock_guard<std::mutex> lk(mu_);
  return metrics_;
}

void Scheduler::Loop() {
  while (true) {
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !queue_.empty() || metrics_.slots_busy > 0; });
      if (stop_) break;
      Admit();
    }
    RunStep();
  }
  for (auto& s : slots_) {  // the server is going away: every open request ends
    if (s->active) s->ch->Push({.kind = GenerationEvent::Kind::kError, .text = "the server is shutting down"});
  }
  for (Pending& p : queue_) p.ch->Push({.kind = GenerationEvent::Kind::kError, .text = "the server is shutting down"});
}

bool Scheduler::Admit() {
  bool any = false;
  while (!queue_.empty()) {
    Pending& p = queue_.front();
    if (p.ch->cancelled()) {
      ++metrics_.requests_cancelled;
      queue_.pop_front();
      continue;
    }
    Slot* best = nullptr;
    size_t best_prefix = 0;
    for (auto& s : slots_) {
      if (s->active) continue;
      const size_t prefix = CommonPrefix(s->cached, p.req.prompt);
      if (best == nullptr || prefix > best_prefix || (prefix == best_prefix && s->last_used < best->last_used)) {
        best = s.get();
        best_prefix = prefix;
      }
    }
    if (best == nullptr) break;
    Slot& s = *best;
    // At least the last prompt token runs again: its logits start the generation.
    const size_t reuse = std::min(best_prefix, p.req.prompt.size() - 1);
    s.cached.resize(reuse);
    s.fed = reuse;
    s.cached_prompt = static_cast<int64_t>(reuse);
    s.req = std::move(p.req);
    s.ch = std::move(p.ch);
    s.active = true;
    s.generating = false;
    s.next = -1;
    s.generated = 0;
    s.history = s.req.prompt;
    s.history.reserve(static_cast<size_t>(o_.n_ctx));
    s.sampler = std::make_unique<Sampler>(s.req.sampling, model_.config().n_vocab);
    s.text = TextStream(s.req.stop);
    s.pending.clear();
    s.lookup.reset();
    s.draft_sampler.reset();
    s.draft_primed = false;
    if (o_.spec.enabled()) {
      // Timed costs only with greedy sampling: with a seed, the draft lengths must not depend on
      // timing. A greedy request after a greedy one keeps the costs the slot measured (a request
      // of a few dozen tokens is too short to learn them): only the accept rate starts again.
      const bool timed = s.req.sampling.temp <= 0;
      if (timed && s.length && s.length_timed) {
        s.length->Restart();
      } else {
        s.length.emplace(DraftLengthFor(o_.spec, model_, timed));
      }
      s.length_timed = timed;
    }
    if (o_.spec.draft != nullptr) s.draft_sampler = std::make_unique<Sampler>(BatchDrafter::DraftParams(s.req.sampling), model_.config().n_vocab);
    s.drafts.clear();
    s.drafted = s.accepted = 0;
    s.last_used = ++tick_;
    queue_.pop_front();
    ++metrics_.requests_total;
    ++metrics_.slots_busy;
    metrics_.prompt_tokens_total += static_cast<int64_t>(s.req.prompt.size());
    metrics_.prompt_tokens_cached += static_cast<int64_t>(reuse);
    any = true;
  }
  metrics_.queued = static_cast<int>(queue_.size());
  return any;
}

void Scheduler::Finish(Slot& s, const char* reason) {
  std::string tail;
  s.text.Finish(&tail);
  if (!tail.empty() || !s.pending.empty()) {
    s.ch->Push({.kind = GenerationEvent::Kind::kText, .text = std::move(tail), .tokens = std::move(s.pending)});
  }
  s.pending.clear();
  GenerationEvent done{.kind = GenerationEvent::Kind::kDone, .finish_reason = reason};
  done.prompt_tokens = static_cast<int64_t>(s.req.prompt.size());
  done.completion_tokens = s.generated;
  done.cached_tokens = s.cached_prompt;
  done.speculative = s.length.has_value();
  done.drafted = s.drafted;
  done.accepted = s.accepted;
  std::shared_ptr<RequestChannel> ch = s.ch;
  Release(s);  // the slot is free before the submitter hears that its request is done
  ch->Push(std::move(done));
}

void Scheduler::Release(Slot& s) {
  s.ch.reset();
  s.sampler.reset();
  s.lookup.reset();
  s.active = false;
  s.generating = false;
  std::lock_guard<std::mutex> lk(mu_);
  --metrics_.slots_busy;
}

int32_t Scheduler::Choose(Slot& s, const float* raw, const int32_t* draft, const TokenDist* q, bool* accepted) {
  const int64_t V = model_.config().n_vocab;
  std::copy(raw, raw + V, logits_.begin());
  if (s.req.ignore_eos) {
    for (int32_t t : eog_) logits_[t] = -std::numeric_limits<float>::infinity();
  }
  *accepted = false;
  if (draft == nullptr || s.req.sampling.temp <= 0) {  // greedy: the draft must be the token plain decoding picks
    const int32_t t = s.sampler->Sample(logits_.data(), s.history);
    *accepted = draft != nullptr && t == *draft;
    return t;
  }
  s.sampler->Distribution(logits_.data(), s.history, &dist_);
  point_[0] = {*draft, 1.0f};  // a lookup draft is a point mass
  return s.sampler->AcceptOrResample(dist_, q != nullptr ? *q : point_, *draft, accepted);
}

bool Scheduler::Emit(Slot& s, int32_t t, const float* raw) {
  const int64_t V = model_.config().n_vocab;
  if (IsEog(t) && !s.req.ignore_eos) {
    Finish(s, "stop");
    return false;
  }
  if (s.req.top_logprobs >= 0) {  // of the model's distribution (raw logits), as OpenAI reports them
    const float mx = *std::max_element(raw, raw + V);
    double sum = 0;
    for (int64_t i = 0; i < V; ++i) sum += std::exp(static_cast<double>(raw[i] - mx));
    const float log_z = mx + static_cast<float>(std::log(sum));
    TokenLogprob lp{t, raw[t] - log_z, {}};
    const auto k = static_cast<size_t>(std::min<int64_t>(s.req.top_logprobs, V));
    if (k > 0) {
      top_scratch_.resize(static_cast<size_t>(V));
      for (int64_t i = 0; i < V; ++i) top_scratch_[i] = {raw[i], static_cast<int32_t>(i)};
      std::partial_sort(top_scratch_.begin(), top_scratch_.begin() + static_cast<long>(k), top_scratch_.end(),
                        [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
      for (size_t i = 0; i < k; ++i) lp.top.emplace_back(top_scratch_[i].second, top_scratch_[i].first - log_z);
    }
    s.pending.push_back(std::move(lp));
  } else {
    s.pending.push_back({t, 0.0f, {}});
  }
  ++s.generated;
  s.history.push_back(t);
  if (s.lookup) s.lookup->Add(std::span<const int32_t>(&t, 1));
  s.next = t;
  s.generating = true;
  std::string out;
  const bool stopped = s.text.Push(TokenText(t), &out);
  if (!out.empty()) {
    s.ch->Push({.kind = GenerationEvent::Kind::kText, .text = std::move(out), .tokens = std::move(s.pending)});
    s.pending.clear();
  }
  if (stopped) Finish(s, "stop");
  else if (s.req.max_tokens >= 0 && s.generated >= s.req.max_tokens) Finish(s, "length");
  else if (static_cast<int64_t>(s.cached.size()) + 1 > o_.n_ctx) Finish(s, "length");
  return s.active;
}

int Scheduler::DraftCount(Slot& s, int64_t budget) const {
  if (!s.length) return 0;
  // Drafts beyond which nothing would be kept: max_tokens, and the context (the step runs `next`
  // at position cached.size() and the drafts after it, each below n_ctx).
  int64_t room = o_.n_ctx - 1 - static_cast<int64_t>(s.cached.size());
  if (s.req.max_tokens >= 0) room = std::min(room, s.req.max_tokens - s.generated - 1);
  return static_cast<int>(std::max<int64_t>(0, std::min<int64_t>({s.length->Next(OtherSlots(s)), room, budget})));
}

int Scheduler::OtherSlots(const Slot& s) const {
  // The other generating slots' tokens count in a greedy slot's draft length and cut (a drafted row
  // slows their step too); not with sampling, where a slot's drafts must not depend on what else runs.
  return s.length_timed ? static_cast<int>(gen_.size()) - 1 : 0;
}

void Scheduler::Draft(const std::vector<Slot*>& gen) {
  const auto t0 = std::chrono::steady_clock::now();
  int drafting = 0;
  bool prompt_read = false;  // the draft model read a request's prompt in this phase
  if (drafter_ != nullptr) {  // one batched draft forward per position for all slots
    jobs_.clear();
    for (Slot* s : gen) {
      s->drafts.clear();
      if (s->k <= 0) continue;
      jobs_.push_back({.seq = s->id, .text = &s->history, .k = s->k, .sampler = s->draft_sampler.get(), .out = &s->drafts, .qs = &s->qs});
      prompt_read = prompt_read || !s->draft_primed;
      s->draft_primed = true;
    }
    drafter_->Draft(jobs_);
    drafting = static_cast<int>(jobs_.size());
  } else {
    for (Slot* s : gen) {
      s->drafts.clear();
      if (s->k <= 0) continue;
      if (!s->lookup) {
        s->lookup.emplace(o_.spec.ngram_min, o_.spec.ngram_max);
        s->lookup->Add(s->history);
      }
      s->lookup->Draft(s->k, s->length ? s->length->MinDraftProb(s->k, OtherSlots(*s)) : 0.0, &s->drafts);
      ++drafting;
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (Slot* s : gen) {
    if (static_cast<int>(s->drafts.size()) < o_.spec.draft_min) s->drafts.clear();
    // Each drafting slot's share; not a drafting cost where the draft model read a new request's
    // prompt (a prompt's cost, once, as run counts the draft model's prefill: counted, it made a
    // drafted token look like several steps and turned drafting off for the request).
    s->draft_s = s->k <= 0 ? 0.0 : prompt_read ? -1.0 : seconds / std::max(1, drafting);
  }
}

int64_t Scheduler::Check(Slot& s, const float* rows, double step_s) {
  const int64_t V = model_.config().n_vocab;
  const int64_t before = s.generated;
  const size_t k = s.drafts.size();
  // The batch ran `next` and the drafts; until a draft is accepted, the cache holds only `next`.
  s.cached.resize(s.cached.size() - k);
  s.drafted += static_cast<int64_t>(k);  // counted before Emit may end the request and report them
  int n_acc = 0;
  for (size_t i = 0; i <= k; ++i) {
    if (i > 0) s.cached.push_back(s.drafts[i - 1]);  // accepted: its K/V from this step stays
    bool accepted = false;
    const TokenDist* q = i < k && drafter_ != nullptr ? &s.qs[i] : nullptr;
    const int32_t t = Choose(s, rows + static_cast<int64_t>(i) * V, i < k ? &s.drafts[i] : nullptr, q, &accepted);
    if (accepted) {
      ++n_acc;
      ++s.accepted;
    }
    if (!Emit(s, t, rows + static_cast<int64_t>(i) * V) || !accepted) break;
  }
  if (s.length) s.length->Update(static_cast<int>(k), n_acc, step_s, s.draft_s);
  if (s.lookup) s.lookup->Checked(static_cast<int>(k), n_acc);
  step_drafted_ += static_cast<int64_t>(k);
  step_accepted_ += n_acc;
  return s.generated - before;
}

void Scheduler::RunStep() {
  batch_.clear();
  owners_.clear();
  step_drafted_ = step_accepted_ = 0;
  int freed = 0;
  for (auto& sp : slots_) {  // clients that went away leave first
    Slot& s = *sp;
    if (s.active && s.ch->cancelled()) {
      Release(s);
      ++freed;
    }
  }
  gen_.clear();
  for (auto& sp : slots_) {
    if (sp->active && sp->generating) gen_.push_back(sp.get());
  }
  // Each generating slot's token and its drafts, each with logits (StepTokens leaves room for
  // every slot's drafts; the budget only guards other options).
  int64_t room = o_.max_batch - static_cast<int64_t>(gen_.size());
  for (Slot* s : gen_) {
    s->k = DraftCount(*s, room);
    room -= s->k;
  }
  Draft(gen_);
  for (Slot* sp : gen_) {
    Slot& s = *sp;
    const auto pos = static_cast<int64_t>(s.cached.size());
    batch_.push_back({s.next, s.id, pos, true});
    s.cached.push_back(s.next);
    for (size_t i = 0; i < s.drafts.size(); ++i) {
      batch_.push_back({s.drafts[i], s.id, pos + 1 + static_cast<int64_t>(i), true});
      s.cached.push_back(s.drafts[i]);
    }
    owners_.push_back({&s, 1 + static_cast<int>(s.drafts.size())});
  }
  // Prompts, oldest request first, in chunks, within what is left of the step's batch.
  std::vector<Slot*> reading;
  for (auto& sp : slots_) {
    if (sp->active && !sp->generating) reading.push_back(sp.get());
  }
  std::sort(reading.begin(), reading.end(), [](const Slot* a, const Slot* b) { return a->last_used < b->last_used; });
  bool prompt_work = false;
  for (Slot* s : reading) {
    const int64_t budget = o_.max_batch - static_cast<int64_t>(batch_.size());
    if (budget <= 0) break;
    const auto left = static_cast<int64_t>(s->req.prompt.size() - s->fed);
    const int64_t take = std::min({o_.prompt_chunk, left, budget});
    for (int64_t i = 0; i < take; ++i) {
      const bool last = s->fed + 1 == s->req.prompt.size();
      batch_.push_back({s->req.prompt[s->fed], s->id, static_cast<int64_t>(s->cached.size()), last});
      s->cached.push_back(s->req.prompt[s->fed]);
      ++s->fed;
      if (last) owners_.push_back({s, 0});  // 0: a prompt's last row, whose logits start the generation
    }
    prompt_work = prompt_work || take > 0;
  }
  int64_t generated = 0;
  double seconds = 0;
  if (!batch_.empty()) {
    const auto t0 = std::chrono::steady_clock::now();
    if (Leading()) {  // the other ranks run the same step on their shards (FollowScheduler)
      auto n = static_cast<int64_t>(batch_.size());
      o_.comm->WaitBroadcast(&n, sizeof(n), 0);
      o_.comm->Broadcast(batch_.data(), batch_.size() * sizeof(BatchToken), 0);
    }
    const float* logits = session_->ForwardBatch(batch_);
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const int64_t V = model_.config().n_vocab;
    // With prompt work in the step its time says little about the cost of the drafts.
    const double step_s = prompt_work ? -1.0 : seconds;
    for (auto [s, rows] : owners_) {
      if (rows == 0) {
        bool accepted = false;
        const int64_t before = s->generated;
        Emit(*s, Choose(*s, logits, nullptr, nullptr, &accepted), logits);
        generated += s->generated - before;
        logits += V;
      } else {
        generated += Check(*s, logits, step_s);
        logits += static_cast<int64_t>(rows) * V;
      }
    }
  }
  int64_t kv = 0;
  for (auto& sp : slots_) kv += sp->active ? static_cast<int64_t>(sp->cached.size()) : 0;
  std::lock_guard<std::mutex> lk(mu_);
  metrics_.requests_cancelled += freed;
  metrics_.generated_tokens_total += generated;
  metrics_.drafted_tokens_total += step_drafted_;
  metrics_.accepted_tokens_total += step_accepted_;
  (prompt_work ? metrics_.prompt_seconds : metrics_.decode_seconds) += seconds;
  metrics_.steps += batch_.empty() ? 0 : 1;
  metrics_.kv_used = kv;
}

}  // namespace lowbit

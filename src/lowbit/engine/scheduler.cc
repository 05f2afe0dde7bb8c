#include "lowbit/engine/scheduler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "lowbit/base/check.h"
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
};

SessionOptions SchedulerSessionOptions(SchedulerOptions o) {
  o.n_slots = std::max(1, o.n_slots);
  return SessionOptions{.n_ctx = o.n_ctx, .threads = o.threads, .max_batch = std::max<int64_t>(o.max_batch, o.n_slots),
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
  o_.max_batch = std::max<int64_t>(o_.max_batch, o_.n_slots);
  o_.prompt_chunk = std::max<int64_t>(1, o_.prompt_chunk);
  session_ = std::make_unique<LlamaSession>(model_, SchedulerSessionOptions(o_));
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
  std::shared_ptr<RequestChannel> ch = s.ch;
  Release(s);  // the slot is free before the submitter hears that its request is done
  ch->Push(std::move(done));
}

void Scheduler::Release(Slot& s) {
  s.ch.reset();
  s.sampler.reset();
  s.active = false;
  s.generating = false;
  std::lock_guard<std::mutex> lk(mu_);
  --metrics_.slots_busy;
}

void Scheduler::Sample(Slot& s, const float* raw) {
  const int64_t V = model_.config().n_vocab;
  std::copy(raw, raw + V, logits_.begin());
  if (s.req.ignore_eos) {
    for (int32_t t : eog_) logits_[t] = -std::numeric_limits<float>::infinity();
  }
  const int32_t t = s.sampler->Sample(logits_.data(), s.history);
  if (IsEog(t) && !s.req.ignore_eos) {
    Finish(s, "stop");
    return;
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
}

void Scheduler::RunStep() {
  batch_.clear();
  owners_.clear();
  int freed = 0;
  for (auto& sp : slots_) {  // clients that went away leave first
    Slot& s = *sp;
    if (s.active && s.ch->cancelled()) {
      Release(s);
      ++freed;
    }
  }
  for (auto& sp : slots_) {
    Slot& s = *sp;
    if (!s.active || !s.generating) continue;
    batch_.push_back({s.next, s.id, static_cast<int64_t>(s.cached.size()), true});
    s.cached.push_back(s.next);
    owners_.push_back(&s);
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
      if (last) owners_.push_back(s);
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
    for (size_t k = 0; k < owners_.size(); ++k) {
      Slot& s = *owners_[k];
      const int64_t before = s.generated;
      Sample(s, logits + static_cast<int64_t>(k) * V);
      generated += s.generated - before;
    }
  }
  int64_t kv = 0;
  for (auto& sp : slots_) kv += sp->active ? static_cast<int64_t>(sp->cached.size()) : 0;
  std::lock_guard<std::mutex> lk(mu_);
  metrics_.requests_cancelled += freed;
  metrics_.generated_tokens_total += generated;
  (prompt_work ? metrics_.prompt_seconds : metrics_.decode_seconds) += seconds;
  metrics_.steps += batch_.empty() ? 0 : 1;
  metrics_.kv_used = kv;
}

}  // namespace lowbit

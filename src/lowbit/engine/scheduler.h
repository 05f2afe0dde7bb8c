// Continuous batching: N slots share one session (a KV cache of N sequences) and one step loop.
//
// Each step runs one LlamaSession::ForwardBatch over every active sequence: one decode token per
// generating slot, plus a chunk of the prompt of slots that are still reading theirs, so the
// weights stream from memory once per step for all clients and a long new prompt never stalls the
// running streams for more than a chunk. Requests wait in a bounded queue (Submit fails with
// kBusy when it is full) and join between steps. A slot keeps the tokens whose K/V it holds after
// its request ends; a new request goes to the free slot that shares the longest prefix with its
// prompt and reads only the rest (the next turn of a conversation reuses the history). A request
// whose client has gone (Cancel) leaves its slot at the next step.
//
// Results go to the request's channel as events: text (valid UTF-8, never a partial stop string;
// text_stream.h) with the tokens behind it and, when asked, their log-probabilities; then one
// final event with the finish reason and counts. Tokens do not depend on what else runs in the
// batch: the model's logits are batch-invariant (tests/model/batch_test.cc) and each request has
// its own seeded sampler.
//
// Speculative decoding (SchedulerOptions::spec): each generating slot drafts up to k tokens from
// n-grams of its own prompt and text (lookup, engine/prompt_lookup.h) or from a draft model (one
// batched draft forward per drafted position for all slots: BatchDrafter), and the step carries
// its last token and its drafts; the drafts are checked in order with the rule of engine/speculative.h
// (greedy: the token plain decoding samples must equal the draft; sampling:
// Sampler::AcceptOrResample with the slot's own sampler), and the slot's cache forgets the rejected
// positions (they are written over later). Every token still goes through the one path that checks
// stop strings, max_tokens and the context's end, so a request ends at the token where it ends
// without speculation; greedy text is plain decoding's, byte for byte. The draft length adapts per
// slot (DraftLength): from the step times with greedy sampling, from fixed costs with sampling (so
// that a seed reproduces the text whatever else runs).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/engine/generate.h"
#include "lowbit/engine/speculative.h"
#include "lowbit/model/llama.h"
#include "lowbit/sampling/sampler.h"
#include "lowbit/tokenizer/tokenizer.h"

namespace lowbit {

struct SchedulerOptions {
  int n_slots = 1;
  int64_t n_ctx = 2048;        // positions per slot
  int threads = 0;
  bool kv_f16 = false;
  int64_t max_batch = 512;     // tokens per forward step
  int64_t prompt_chunk = 128;  // prompt tokens a slot may feed per step
  int max_queue = 16;          // waiting requests beyond the slots; more: kBusy
  // Speculative decoding: prompt lookup or a draft model (same vocabulary; one rank). max_batch
  // grows to hold every slot's token and drafts (n_slots x (1 + draft_max)).
  SpeculativeOptions spec;
  // Tensor parallel: the scheduler runs on rank 0 and sends each step's batch to the other ranks,
  // which run FollowScheduler with the same options. nullptr: one rank.
  Comm* comm = nullptr;
};

// The session a scheduler (and a follower) runs with these options.
SessionOptions SchedulerSessionOptions(SchedulerOptions o);

// Ranks 1.. of a tensor-parallel scheduler: runs every step rank 0's Scheduler runs, on this rank's
// shard, until that Scheduler is destroyed. Waiting between requests sleeps (Comm::WaitBroadcast).
Status FollowScheduler(const LlamaModel& model, const SchedulerOptions& o);

struct GenerationRequest {
  std::vector<int32_t> prompt;  // at least one token
  SamplerParams sampling;
  int64_t max_tokens = -1;      // -1: until the context is full
  std::vector<std::string> stop;
  bool ignore_eos = false;
  int top_logprobs = -1;        // -1: no log-probabilities; 0..20: the chosen token's and this many others
};

struct TokenLogprob {
  int32_t token;
  float logprob;
  std::vector<std::pair<int32_t, float>> top;  // most likely first
};

struct GenerationEvent {
  enum class Kind { kText, kDone, kError } kind = Kind::kText;
  std::string text;                  // kText: text to append; kError: the message
  std::vector<TokenLogprob> tokens;  // kText: the tokens generated since the last event (with logprobs when asked)
  std::string finish_reason;         // kDone: "stop" or "length"
  int64_t prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;
  bool speculative = false;           // kDone: drafts were checked (lookup on)
  int64_t drafted = 0, accepted = 0;  // kDone: drafted tokens, and those accepted
};

// What a request and its submitter share: the event queue and the cancel flag.
class RequestChannel {
 public:
  // Waits up to `timeout` for an event; false on time-out.
  bool Next(GenerationEvent* ev, std::chrono::milliseconds timeout);
  void Cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }
  void Push(GenerationEvent ev);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<GenerationEvent> events_;
  std::atomic<bool> cancelled_{false};
};

struct SchedulerMetrics {
  int64_t requests_total = 0, requests_cancelled = 0;
  int64_t prompt_tokens_total = 0, prompt_tokens_cached = 0, generated_tokens_total = 0;
  double prompt_seconds = 0, decode_seconds = 0;  // time in steps with prompt work / only decoding
  int64_t steps = 0;
  int64_t drafted_tokens_total = 0, accepted_tokens_total = 0;  // speculative decoding
  int slots_busy = 0, slots = 0, queued = 0;
  int64_t kv_used = 0, kv_capacity = 0;  // positions
};

class Scheduler {
 public:
  Scheduler(const LlamaModel& model, const Tokenizer& tokenizer, const Vocab& vocab, const SchedulerOptions& o);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a request. Errors: the queue is full (message starts with "busy"), or the prompt does
  // not fit a slot's context.
  Expected<std::shared_ptr<RequestChannel>> Submit(GenerationRequest r);
  SchedulerMetrics Metrics() const;
  int64_t n_ctx() const { return o_.n_ctx; }
  const SchedulerOptions& options() const { return o_; }
  // Text of a token as the output shows it (control tokens show nothing).
  std::string TokenText(int32_t token) const;

 private:
  struct Pending {
    GenerationRequest req;
    std::shared_ptr<RequestChannel> ch;
  };
  struct Slot;

  void Loop();
  bool Admit();                 // takes queued requests into free slots; under mu_
  void RunStep();               // one batched forward and what follows from it
  int DraftCount(Slot& s, int64_t budget) const;  // tokens the slot drafts this step, at most `budget`
  int OtherSlots(const Slot& s) const;             // the `others` of the slot's DraftLength this step
  void Draft(const std::vector<Slot*>& gen);      // this step's drafts of the generating slots (s.drafts)
  // The token at a logits row: plain sampling, or with `draft` (drawn from q; nullptr: a point
  // mass) the rejection rule (sets *accepted).
  int32_t Choose(Slot& s, const float* logits, const int32_t* draft, const TokenDist* q, bool* accepted);
  // Appends a chosen token to the request's output (or ends it there); false when the request ended.
  bool Emit(Slot& s, int32_t t, const float* logits);
  // The step's logits rows of a generating slot, from `rows`; the number of tokens it generated.
  int64_t Check(Slot& s, const float* rows, double step_s);
  void Finish(Slot& s, const char* reason);
  void Release(Slot& s);        // the slot becomes free (slots_busy is exact under mu_)
  bool IsEog(int32_t t) const;
  bool Leading() const;  // rank 0 of several

  const LlamaModel& model_;
  const Tokenizer& tok_;
  const Vocab& vocab_;
  SchedulerOptions o_;
  std::unique_ptr<ThreadPool> pool_;         // with a draft model: the threads both sessions share
  std::unique_ptr<LlamaSession> session_;
  std::unique_ptr<BatchDrafter> drafter_;    // with a draft model
  std::vector<Slot*> gen_;                   // this step's generating slots
  std::vector<BatchDrafter::Job> jobs_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<int32_t> eog_;
  std::vector<float> logits_;       // [n_vocab] scratch for sampling
  std::vector<std::pair<float, int32_t>> top_scratch_;
  TokenDist dist_, point_;          // the rejection rule's p and the point-mass q of a lookup draft
  std::vector<BatchToken> batch_;
  // The slot of each run of logits rows and its length (0: the last row of a prompt).
  std::vector<std::pair<Slot*, int>> owners_;
  int64_t step_drafted_ = 0, step_accepted_ = 0;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  bool stop_ = false;
  SchedulerMetrics metrics_;
  uint64_t tick_ = 0;
  std::thread thread_;
};

}  // namespace lowbit

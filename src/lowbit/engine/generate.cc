#include "lowbit/engine/generate.h"

#include <chrono>

#include "lowbit/engine/speculative.h"
#include "lowbit/parallel/agree.h"
#include "lowbit/tokenizer/tokenizer.h"

namespace lowbit {

Expected<GenerateStats> Generate(const LlamaModel& model, const Vocab& vocab, const GenerateOptions& o,
                                 const std::function<void(const std::string&)>& on_text) {
  const LlamaConfig& c = model.config();
  const int64_t n_ctx = o.n_ctx > 0 ? o.n_ctx : c.n_ctx_train;
  LocalComm local;
  Comm* comm = o.comm != nullptr ? o.comm : &local;
  const bool leader = comm->rank() == 0;
  GenerateStats st;
  std::unique_ptr<Tokenizer> tok;
  // Rank 0 tokenizes; the others learn the outcome (and the error, if any) from it.
  Status prompt = [&]() -> Status {
    if (!leader) return OkStatus();
    LOWBIT_ASSIGN_OR_RETURN(tok, Tokenizer::Create(vocab));
    st.prompt_tokens = tok->EncodeWithBos(o.prompt);
    if (st.prompt_tokens.empty()) return Errorf("the prompt is empty and the vocabulary has no BOS token");
    if (static_cast<int64_t>(st.prompt_tokens.size()) >= n_ctx) {
      return Errorf("the prompt has {} tokens, the context holds {}; shorten it or raise -c", st.prompt_tokens.size(), n_ctx);
    }
    return OkStatus();
  }();
  LOWBIT_RETURN_IF_ERROR(AgreeOnStatus(comm, prompt));
  uint64_t n_prompt = st.prompt_tokens.size();
  comm->Broadcast(&n_prompt, sizeof(n_prompt), 0);
  st.prompt_tokens.resize(n_prompt);
  comm->Broadcast(st.prompt_tokens.data(), n_prompt * sizeof(int32_t), 0);
  if (o.spec.enabled() && comm->size() > 1) return Errorf("speculative decoding (--lookup, --model-draft) runs on one rank only");
  // With a draft model both sessions share one pool of threads (they run one after the other).
  std::unique_ptr<ThreadPool> pool = o.spec.draft != nullptr ? std::make_unique<ThreadPool>(o.threads) : nullptr;
  LlamaSession session(model, SessionOptions{.n_ctx = n_ctx, .threads = o.threads, .max_batch = std::min<int64_t>(n_ctx, 512),
                                             .kv_f16 = o.kv_f16, .comm = comm, .pool = pool.get()});
  Sampler sampler(o.sampling, c.n_vocab);
  std::vector<int32_t> history = st.prompt_tokens;
  history.reserve(static_cast<size_t>(n_ctx));
  std::vector<float> logits(static_cast<size_t>(c.n_vocab));
  auto t0 = std::chrono::steady_clock::now();
  const float* out = session.Forward(st.prompt_tokens, 0);  // prefill: one batch
  int64_t pos = static_cast<int64_t>(st.prompt_tokens.size());
  auto t1 = std::chrono::steady_clock::now();
  st.prompt_seconds = std::chrono::duration<double>(t1 - t0).count();
  if (o.spec.enabled()) return GenerateSpeculative(session, model, pool.get(), vocab, *tok, o, sampler, std::move(st), out, on_text);
  for (int64_t i = 0; i < o.n_predict && pos < n_ctx; ++i) {
    int32_t next = -1;  // -1: end of sequence
    if (leader) {
      std::copy(out, out + c.n_vocab, logits.begin());
      next = sampler.Sample(logits.data(), history);
      if (next == vocab.eos_id) next = -1;
    }
    comm->Broadcast(&next, sizeof(next), 0);
    if (next < 0) {
      st.stopped_at_eos = true;
      break;
    }
    st.generated.push_back(next);
    history.push_back(next);
    if (leader && on_text) on_text(tok->Decode(next));
    out = session.Forward(next, pos++);
    ++st.forwards;
  }
  st.generate_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  return st;
}

}  // namespace lowbit

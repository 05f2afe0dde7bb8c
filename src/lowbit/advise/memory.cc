#include "lowbit/advise/memory.h"

#include <algorithm>
#include <utility>

#include "lowbit/model/session_memory.h"
#include "lowbit/model/shard.h"

namespace lowbit {
namespace {

uint64_t RoundUp(uint64_t n, uint64_t unit) { return (n + unit - 1) / unit * unit; }

uint64_t ViewBytes(const WeightView& w) {
  const uint64_t bytes = *RowBytes(w.type, static_cast<uint64_t>(w.cols));
  return RoundUp((w.rows > 1 ? ImageRowStep(bytes) : bytes) * static_cast<uint64_t>(w.rows), 64);
}

}  // namespace

uint64_t HeldWeightBytes(const LlamaModel& m) {
  uint64_t b = ViewBytes(m.token_embd) + ViewBytes(m.output_norm);
  if (m.output.data != m.token_embd.data) b += ViewBytes(m.output);
  auto add = [&b](const WeightView& w) {
    if (w.data != nullptr) b += ViewBytes(w);
  };
  for (const LlamaModel::Layer& L : m.layers) {
    for (const WeightView* w : {&L.attn_norm, &L.wq, &L.wk, &L.wv, &L.wo, &L.ffn_norm, &L.gate, &L.up, &L.down, &L.q_norm, &L.k_norm,
                                &L.attn_post_norm, &L.ffn_post_norm, &L.router, &L.shexp_gate_inp, &L.shexp_gate, &L.shexp_up,
                                &L.shexp_down}) {
      add(*w);
    }
    // A mixture of experts: every expert is held (a token uses n_expert_used of them).
    for (const auto* experts : {&L.gate_exps, &L.up_exps, &L.down_exps}) {
      for (const WeightView& w : *experts) add(w);
    }
  }
  return b;
}

nlohmann::json RunMemory::ToJson() const {
  return {{"weights_bytes", weights}, {"kv_cache_bytes", kv_cache}, {"buffers_bytes", buffers},
          {"overhead_bytes", overhead}, {"total_bytes", total()}, {"weights_held", in_memory ? "read into memory" : "mapped"}};
}

int64_t ContextOf(const PlannedModel& p, const RunShape& r) { return r.n_ctx > 0 ? r.n_ctx : p.model.config().n_ctx_train; }

SessionOptions SessionOptionsFor(int64_t n_ctx, int threads, bool kv_f16, int slots) {
  SessionOptions o;
  o.n_ctx = n_ctx;
  o.threads = threads;
  o.kv_f16 = kv_f16;
  o.n_seq = std::max(1, slots);
  o.max_batch = o.n_seq > 1 ? std::max<int64_t>(512, o.n_seq) : std::min<int64_t>(n_ctx, 512);
  o.batch_invariant = o.n_seq > 1;
  return o;
}

RunMemory PredictRunMemory(const PlannedModel& p, const RunShape& r) {
  RunMemory m;
  m.in_memory = r.in_memory;
  // Held in memory: the model's image of its weights in whole 2 MiB pages (rows ImageRowStep apart),
  // and the file's header read through the mapping (a folder's rows are built in memory as they are:
  // file_bytes). Mapped: the pages read, which are all but the token embedding's unread rows (one row
  // per token is read).
  const uint64_t page = r.huge_pages ? uint64_t{2} << 20 : 4096;
  if (!r.in_memory) m.weights = RoundUp(p.file_bytes - p.UnreadBytes(), 4096);
  else if (p.folder_bytes > 0 || p.file == nullptr) m.weights = RoundUp(p.file_bytes, page);
  else m.weights = RoundUp(HeldWeightBytes(p.model), page) + RoundUp(p.file->data_offset(), 4096);
  const int64_t n_ctx = ContextOf(p, r);
  const SessionSizes s = PlanSession(p.model, SessionOptionsFor(n_ctx, r.threads, r.kv_f16, r.slots));
  m.kv_cache = s.kv_bytes;
  const uint64_t vocab = static_cast<uint64_t>(p.model.config().n_vocab);
  // Generate's copy of the logits and token history; the sampler's candidates and probabilities.
  const uint64_t loop = vocab * 4 + static_cast<uint64_t>(n_ctx) * 4 + vocab * (sizeof(std::pair<float, int32_t>) + 4);
  m.buffers = s.TotalBytes(r.logits_tokens) - s.kv_bytes + loop;
  m.overhead = kProcessBytes + vocab * kBytesPerVocabEntry + p.n_merges * kBytesPerMerge;
  return m;
}

}  // namespace lowbit

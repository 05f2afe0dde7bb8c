#include "lowbit/advise/memory.h"

#include <algorithm>
#include <utility>

#include "lowbit/model/session_memory.h"

namespace lowbit {
namespace {

uint64_t RoundUp(uint64_t n, uint64_t unit) { return (n + unit - 1) / unit * unit; }

}  // namespace

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
  // MappedFile::Read holds the file in whole 2 MiB pages; a mapping holds the pages read, which are
  // all but the token embedding's unread rows (one row per token is read).
  m.weights = r.in_memory ? RoundUp(p.file_bytes, r.huge_pages ? uint64_t{2} << 20 : 4096)
                          : RoundUp(p.file_bytes - p.UnreadBytes(), 4096);
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

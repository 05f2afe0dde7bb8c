#include "lowbit/advise/guard.h"

#include <fmt/format.h>

#include "lowbit/advise/model_source.h"
#include "lowbit/base/memory_info.h"
#include "lowbit/base/progress.h"

namespace lowbit {
namespace {

RunShape ShapeOf(const FitRequest& r, int64_t n_ctx, bool in_memory) {
  RunShape s;
  s.n_ctx = n_ctx;
  s.threads = r.threads;
  s.kv_f16 = r.kv_f16;
  s.slots = r.slots;
  s.logits_tokens = r.logits_tokens < 0 ? n_ctx - 1 : r.logits_tokens;
  s.in_memory = in_memory;
  s.huge_pages = TransparentHugePages();
  return s;
}

// What would fit in `available`, most similar first; empty when nothing tried does.
std::string Suggest(const PlannedModel& p, const FitRequest& r, const RunShape& shape, uint64_t available) {
  std::vector<std::string> ways;
  auto fits = [&](const PlannedModel& m, const RunShape& s) { return PredictRunMemory(m, s).total() <= available; };
  if (shape.in_memory) {
    RunShape s = shape;
    s.in_memory = false;
    if (fits(p, s)) ways.push_back("--mmap");
  }
  if (!shape.kv_f16) {
    RunShape s = shape;
    s.kv_f16 = true;
    if (fits(p, s)) ways.push_back("--cache-type f16");
  }
  for (int64_t c = shape.n_ctx / 2; c >= 256; c /= 2) {
    RunShape s = shape;
    s.n_ctx = c;
    if (r.logits_tokens < 0) s.logits_tokens = c - 1;
    if (fits(p, s)) {
      ways.push_back(fmt::format("-c {}", c));
      break;
    }
  }
  // The most accurate smaller type that fits as the file is held now.
  auto src = ModelSource::Open(r.model);
  if (src.ok()) {
    for (const std::string& t : DefaultCandidateTypes()) {
      auto q = src->As(t);
      if (!q.ok() || q->file_bytes >= p.file_bytes) continue;
      RunShape s = shape;
      s.in_memory = ChooseResidency(r.residency, q->file_bytes) == Residency::kInMemory;
      const RunMemory m = PredictRunMemory(*q, s);
      if (m.total() <= available) {
        ways.push_back(fmt::format("the model quantized to {} (needs {})", t, HumanBytes(m.total())));
        break;
      }
    }
  }
  std::string out;
  for (size_t i = 0; i < ways.size(); ++i) out += (i == 0 ? "" : i + 1 == ways.size() ? " or " : ", ") + ways[i];
  return out;
}

}  // namespace

Expected<FitCheck> CheckFit(const FitRequest& r) {
  LOWBIT_ASSIGN_OR_RETURN(PlannedModel p, PlanGguf(r.model));
  FitCheck c;
  c.n_ctx = r.n_ctx > 0 ? r.n_ctx : p.model.config().n_ctx_train;
  const bool in_memory = ChooseResidency(r.residency, p.file_bytes) == Residency::kInMemory;
  const RunShape shape = ShapeOf(r, c.n_ctx, in_memory);
  c.memory = PredictRunMemory(p, shape);
  c.available = ReadMemoryInfo().available;
  c.fits = c.available == 0 || c.memory.total() <= c.available;  // unknown memory: do not refuse
  if (!c.fits) c.suggestion = Suggest(p, r, shape, c.available);
  return c;
}

Status RequireFit(const FitRequest& r) {
  LOWBIT_ASSIGN_OR_RETURN(FitCheck c, CheckFit(r));
  if (c.fits) return OkStatus();
  const RunMemory& m = c.memory;
  return Errorf("{}: needs {} (weights {} {}, KV cache {} at context {}{}, buffers {}) but {} is available; {}; "
                "--no-memory-check runs it anyway",
                r.model, HumanBytes(m.total()), HumanBytes(m.weights), m.in_memory ? "read into memory" : "mapped",
                HumanBytes(m.kv_cache), c.n_ctx, r.kv_f16 ? " F16" : "", HumanBytes(m.buffers + m.overhead), HumanBytes(c.available),
                c.suggestion.empty() ? "nothing smaller would fit either (lowbit advise shows the sizes)"
                                     : "it would fit with " + c.suggestion);
}

}  // namespace lowbit

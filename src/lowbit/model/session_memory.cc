#include "lowbit/model/session_memory.h"

#include <algorithm>
#include <initializer_list>
#include <thread>

namespace lowbit {
namespace {

// What MatMul asks of the scratch for `batch` tokens through `w` (kernels/matvec.cc: the
// activation rows, and as much again where the GEMM has its own layout).
uint64_t ProductScratch(const DotKernels& k, const WeightView& w, int64_t batch, bool batch_invariant) {
  const uint64_t rows = ActRowBytes(w.type, w.cols) * static_cast<uint64_t>(batch);
  const bool gemm = k.TakesGemm(w.type, batch, batch_invariant);
  const bool layout = gemm && k.ForGemm8Layout(w.type) != nullptr;
  return layout ? 2 * rows : rows;
}

// What MatMulGroup asks for a decode step of `tokens` (<= kMaxDecodeStep) through a group of
// products: one activation row per token each (at most; shared conversions take less).
uint64_t GroupScratch(std::initializer_list<const WeightView*> group, int64_t tokens = 1) {
  uint64_t total = 0;
  for (const WeightView* w : group) total += ActRowBytes(w->type, w->cols);
  return total * static_cast<uint64_t>(tokens);
}

}  // namespace

uint64_t SessionSizes::ActivationBytes() const {
  const uint64_t moe = n_expert == 0 ? 0
                     : static_cast<uint64_t>(batch * n_expert + 2 * expert_rows * embd) * 4 +
                           static_cast<uint64_t>(expert_rows) * sizeof(ExpertChoice) + static_cast<uint64_t>(2 * n_expert + 1) * 8 +
                           static_cast<uint64_t>(2 * n_expert) * LlamaSession::kLinearJobBytes;
  return static_cast<uint64_t>(batch * (3 * embd + 2 * q_dim + 2 * kv_dim + 2 * ff)) * 4 +
         static_cast<uint64_t>(batch) * (sizeof(BatchToken) + sizeof(int64_t)) + moe;
}

uint64_t SessionSizes::LogitsBytes(int64_t tokens) const {
  return static_cast<uint64_t>(std::max<int64_t>(1, tokens) * vocab) * 4;
}

uint64_t SessionSizes::AttentionScratchBytes() const {
  return static_cast<uint64_t>(threads) * static_cast<uint64_t>(attention_group * n_ctx) * 4;
}

uint64_t SessionSizes::TotalBytes(int64_t logits_tokens) const {
  return kv_bytes + ActivationBytes() + RopeBytes() + LogitsBytes(logits_tokens) + matmul_scratch_bytes +
         AttentionScratchBytes();
}

SessionSizes PlanSession(const LlamaModel& model, const SessionOptions& o, const DotKernels& k) {
  const LlamaConfig& c = model.config();
  SessionSizes s;
  s.n_ctx = o.n_ctx;
  s.n_seq = std::max(o.n_seq, 1);
  s.batch = std::max<int64_t>(1, std::min(o.max_batch, o.n_ctx * s.n_seq));
  s.threads = o.pool != nullptr ? o.pool->size()
              : o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  s.embd = c.n_embd;
  s.q_dim = model.local_heads() * c.head_dim;
  s.kv_dim = model.local_kv_heads() * c.head_dim;
  s.ff = model.local_ff();
  if (c.moe()) {
    s.n_expert = c.n_expert;
    s.expert_rows = s.batch * c.n_expert_used;
    s.ff = std::max(c.n_expert_used * model.local_ff(), model.local_ff_shexp());
  }
  s.vocab = c.n_vocab;
  s.rope_half = c.rope_dim / 2;
  s.rope_tables = c.n_swa > 0 ? 2 : 1;
  s.attention_group = c.n_head / c.n_head_kv;
  s.kv_bytes = static_cast<uint64_t>(c.n_layer * 2 * s.n_seq * s.n_ctx * s.kv_dim) * (o.kv_f16 ? 2 : 4);
  // Every product at a full step (the classifier too: perplexity asks for all logits).
  uint64_t scratch = ProductScratch(k, model.output, s.batch, o.batch_invariant);
  const int64_t step = std::min<int64_t>(s.batch, kMaxDecodeStep);  // a grouped decode step's tokens, at most
  for (const LlamaModel::Layer& L : model.layers) {
    for (const WeightView* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.gate, &L.up, &L.down}) {
      scratch = std::max(scratch, ProductScratch(k, *w, s.batch, o.batch_invariant));
    }
    scratch = std::max({scratch, GroupScratch({&L.wq, &L.wk, &L.wv}, step), GroupScratch({&L.gate, &L.up}, step)});
    if (!c.moe()) continue;
    // An expert's products take up to all the step's tokens; a decode step's are grouped (gate and up
    // of every chosen expert; then the downs), one activation row per product and token at most.
    for (const WeightView* w : {&L.router, &L.shexp_gate, &L.shexp_up, &L.shexp_down, &L.gate_exps[0], &L.up_exps[0], &L.down_exps[0]}) {
      if (w->rows > 0 && w->cols > 0) scratch = std::max(scratch, ProductScratch(k, *w, s.batch, o.batch_invariant));
    }
    const auto used = static_cast<uint64_t>(c.n_expert_used);
    scratch = std::max({scratch, used * GroupScratch({&L.gate_exps[0], &L.up_exps[0]}, step), used * GroupScratch({&L.down_exps[0]}, step),
                        GroupScratch({&L.shexp_gate, &L.shexp_up}, step)});
  }
  s.matmul_scratch_bytes = scratch;
  return s;
}

SessionSizes PlanSession(const LlamaModel& model, const SessionOptions& o) { return PlanSession(model, o, ActiveDotKernels()); }

}  // namespace lowbit

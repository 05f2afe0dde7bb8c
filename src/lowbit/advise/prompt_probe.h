// Prefill at a model's own shapes, timed on this machine for `lowbit advise MODEL`: the products of
// a prompt step (every distinct weight type x rows x columns x tokens of a layer's Q/K/V, O,
// gate/up, down) and a layer's attention over the prompt, so that the cost model (eval/cost_model.h,
// MachineSpeed::product_s and attention_s) need not scale one probe shape to products whose
// activations fit a different cache level or whose fixed costs (activation conversion, hand-offs,
// short rows) weigh differently.
//
// A product: MatMul on the pool of the run's thread count, over rows of synthetic weights of its type
// (a few rows quantized, repeated) and the step's activations at full width; the median of 3
// passes of >= 20 ms each. It is timed whole up to a probe height (kMinProbeRows to kMaxProbeRows
// rows: what one ~10 ms call takes at the type's coarse GEMM rate, never more than 32 MiB of
// weights); a taller one is timed at 16 rows (one chunk: the fixed part, i.e. activation conversion
// and hand-offs, and one thread's 16 rows) and at the probe height, and extended linearly:
// t(rows) = fixed + rows * per_row. Attention: the kernel table's AttendFn called as
// LlamaSession::Attention calls it (token x KV head items on the pool) over a cache of the model's
// head layout, for one layer of a step; a long step samples every k-th token and scales by the
// positions read. A decode step is timed by its groups of products (eval/cost_model.h
// DecodeGroupsOf: Q/K/V, O, gate/up, down, the classifier, as LlamaSession hands them out), each
// one MatMulGroup of one token with its weights streamed from memory (successive calls read
// successive copies in a 1 GiB buffer). Timings are cached per boot (prompt_shapes.json,
// advise/probe_cache.h), keyed by the thread count and ISA.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "lowbit/base/cpu_features.h"
#include "lowbit/base/status.h"
#include "lowbit/eval/cost_model.h"

namespace lowbit {

class PromptProbe {
 public:
  // Times on `threads` threads with the kernel table of `isa`; with `use_cache`, reuses this boot's
  // timings (and records new ones either way).
  PromptProbe(int threads, Isa isa, bool use_cache, bool show_progress);
  ~PromptProbe();
  PromptProbe(const PromptProbe&) = delete;
  PromptProbe& operator=(const PromptProbe&) = delete;

  // Adds to m->product_s and m->attention_s every shape of `shapes` they lack (timed now or from the
  // cache).
  Status Time(const PromptShapes& shapes, MachineSpeed* m);
  // Adds to m->group_s every decode group of `d` it lacks: one token through the group's products
  // in one MatMulGroup, the weights streamed from memory (nothing where d.streamed is false).
  Status TimeDecode(const DecodeGroups& d, MachineSpeed* m);

  static constexpr int64_t kMinProbeRows = 128, kMaxProbeRows = 1024;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lowbit

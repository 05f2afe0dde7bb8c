// `lowbit bench`: prompt processing and generation speed of a model, the weight bytes read per
// generated token, and the machine's read bandwidth measured the same run (a STREAM-like sum over a
// buffer much larger than the caches), so tok/s stands beside its roofline.
//
// Tensor parallel (`comm` with several ranks): every rank calls Bench and runs the same tokens
// (rank 0 broadcasts each decoded token, as generation does). Speeds are rank 0's; weight bytes,
// operations and the probe's bandwidth are summed over the ranks (they read at the same time).
#pragma once

#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/model/llama.h"

namespace lowbit {

struct BenchOptions {
  int64_t n_prompt = 512, n_gen = 128;
  int threads = 1;
  int reps = 5;
  bool kv_f16 = false;  // F16 KV cache
  Comm* comm = nullptr;  // the model's ranks; nullptr: one rank
  size_t probe_mib = 512;  // the bandwidth probe's buffer (tests make it small)
};

struct BenchResult {
  int threads = 1;
  double pp = 0, pp_std = 0;  // prompt tokens per second
  double tg = 0, tg_std = 0;  // generated tokens per second
  double bytes_per_token = 0; // weight bytes read per generated token
  double gbps = 0;            // bytes_per_token * tg
  double bandwidth_gbps = 0;  // measured read bandwidth, same thread count: the best of 2 probe passes
                              // before the first repetition and 2 after each (so over the same minutes)
  double ops_per_token = 0;   // 2 x multiply-adds of the weight matrices (attention scores excluded)
  double pp_gops = 0;         // ops_per_token * pp / 1e9: prefill throughput, GOP/s
};

// Weight bytes one decoded token reads (all layer matrices and norms, the classifier, one row of
// the token embedding).
double WeightBytesPerToken(const LlamaModel& m);
// Operations (2 per multiply-add) of one token's weight products: every layer matrix and the classifier.
double MatMulOpsPerToken(const LlamaModel& m);

Expected<BenchResult> Bench(const LlamaModel& model, const BenchOptions& opts);

// The read-bandwidth probe on its own: the best of `passes` passes of `threads` threads over a
// buffer of `mib` MiB, in GB/s.
double MeasureReadBandwidth(int threads, size_t mib = 512, int passes = 3);

}  // namespace lowbit

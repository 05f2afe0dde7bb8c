// The decode step (and the prompt) of a model small enough to stay in the last-level cache, timed
// whole on this machine for `lowbit advise MODEL`.
//
// A model that streams from memory is predicted from its bytes and the measured stream rates (the
// cost model, eval/cost_model.h); for one that fits in the cache the step is mostly what the rates
// do not describe (norms, RoPE, attention over a short cache, the hand-offs, the first and last
// products' set-up), and a residual fitted on another model left the prediction 0.76-1.79x of
// `lowbit bench` on stories5M (docs/PERFORMANCE.md, "lowbit advise: files in cache"). Such a model is
// a few MB, so its step is timed instead: the engine loads a copy of the model built from the plan's
// metadata and tensor list alone (the same names, shapes and types; synthetic values, as the speed
// probes make them), and decodes with the run's thread count and cache type. Nothing of the given
// file but its header is read.
#pragma once

#include <cstdint>

#include "lowbit/base/status.h"
#include "lowbit/formats/gguf_reader.h"

namespace lowbit {

struct StepProbeOptions {
  int threads = 1;
  int64_t n_ctx = 256;      // the session's context (the run's)
  bool kv_f16 = false;      // the run's cache type
  int64_t tokens = 128;     // the decode to time: positions [0, tokens) from an empty cache
  int64_t prompt = 0;       // the prompt to time (0: none), at most n_ctx tokens
  bool in_memory = true;    // the run holds its weights in memory (rows ImageRowStep apart), else views a mapping
};

struct StepTimes {
  double decode_s = 0;  // mean seconds per decoded token over positions [0, tokens)
  double prompt_s = 0;  // mean seconds of the whole prompt (0 when not timed)
};

// The model `plan` describes (a GGUF's tensor views are not read), copied once and loaded by the
// engine. Decode time is affine in the position, so its mean is that of the first and the last
// up-to-64 positions, each block timed 7 times (the mean, as bench reports). The prompt runs as `lowbit
// run` and `bench` run it (steps of up to 512 tokens from an empty cache), 7 times, the mean. An error
// where the plan holds a tensor type the probes cannot make, or the engine does not load it.
Expected<StepTimes> TimeSteps(const GgufFile& plan, const StepProbeOptions& o);

}  // namespace lowbit

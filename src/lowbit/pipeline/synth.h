// `lowbit synth`: a complete llama GGUF (metadata, a 32k-style SentencePiece vocabulary, every
// tensor) with random N(0, 0.02) weights in a real model's shape, so engines can be timed on the
// same bytes in the memory-bound regime without downloading a model. Weights are deterministic in
// (seed, tensor name, row), and quantized with lowbit's quantizers to the requested type or mix.
#pragma once

#include <string>
#include <vector>

#include "lowbit/base/status.h"

namespace lowbit {

struct SynthShape {
  std::string name;
  int64_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_ctx;
};

const std::vector<SynthShape>& SynthShapes();

struct SynthOptions {
  std::string shape, output, type = "F32";
  uint64_t seed = 1;
  int threads = 0;
  bool show_progress = false;
};

// Returns the file size written.
Expected<uint64_t> Synthesize(const SynthOptions& o);

}  // namespace lowbit

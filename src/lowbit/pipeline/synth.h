// `lowbit synth`: a complete llama GGUF (metadata, a 32k-style SentencePiece vocabulary, every
// tensor) with random N(0, 0.02) weights in a real model's shape, so engines can be timed on the
// same bytes in the memory-bound regime without downloading a model. Weights are deterministic in
// (seed, tensor name, row), and quantized with lowbit's quantizers to the requested type or mix.
#pragma once

#include <string>
#include <vector>

#include "lowbit/base/status.h"

namespace lowbit {

// A real model's shape (SentencePiece-style vocabulary of n_vocab pieces). `lowbit advise` sizes and
// times these too; the synthetic file has the real model's architecture, tensors (fused ones, biases,
// q/k and post norms, RoPE factors as llama.cpp's converter writes them) and byte sizes, but its
// vocabulary metadata is smaller than the real tokenizer's (no merges).
struct SynthShape {
  std::string name;
  int64_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_ctx;
  bool tied = false;         // no output.weight: the classifier is the token embedding
  std::string description;   // what real model it is
  std::string arch = "llama";  // general.architecture: llama, qwen, qwen2, qwen3, phi3, gemma2, gemma3
  int64_t head_dim = 0;        // 0: n_embd / n_head
  float rope_base = 10000.0f;
  int64_t n_swa = 0;           // gemma2/3: sliding window (positions)
  bool llama3_rope = false;    // rope_freqs.weight from Llama 3.1's frequency smoothing (factor 32 for 3.2)
  // Mixture of experts (n_expert > 0): every layer's FFN is n_expert experts of n_ff_exp columns,
  // n_expert_used per token, plus a shared expert of n_ff_shexp columns where > 0 (qwen2moe).
  int64_t n_expert = 0, n_expert_used = 0, n_ff_exp = 0, n_ff_shexp = 0;
};

const std::vector<SynthShape>& SynthShapes();
// The shape called `name`, or an error listing the names.
Expected<SynthShape> FindSynthShape(const std::string& name);

struct SynthOptions {
  std::string shape, output, type = "F32";
  uint64_t seed = 1;
  int threads = 0;
  int64_t layers = 0;  // > 0: only this many layers of the shape (quick tests of a wide model)
  bool vocab = true;   // false: no tokenizer.* metadata (a plan of the file's shapes; see advise/model_source.cc)
  // > 0: only the first N rows of each tensor are drawn and quantized, the rest repeat them (a file
  // for timing the memory-bound regime quickly: the bytes stream as a real model's, the values are
  // not a model's; advise's speed probe).
  int64_t repeat_rows = 0;
  bool show_progress = false;
};

class GgufWriter;
// The file Synthesize writes, described (metadata and tensor list) but not written: its tensors'
// bytes are produced only when written. o.output is not used.
Expected<GgufWriter> SynthWriter(const SynthOptions& o);

// Returns the file size written.
Expected<uint64_t> Synthesize(const SynthOptions& o);

}  // namespace lowbit

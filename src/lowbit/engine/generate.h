// Text generation: tokenize the prompt (BOS first when the vocabulary asks for it), run it through
// the model, then sample up to `n_predict` tokens, streaming each token's text to a callback, and
// stop at end-of-sequence or the context's end. Reports prompt and generation speed.
//
// Tensor parallel (`comm` with several ranks, each with its shard of the model): every rank calls
// Generate. Rank 0 tokenizes, samples and calls on_text; it broadcasts the prompt's tokens and each
// sampled token (or the end), and the other ranks run the same forward passes on them.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/model/llama.h"
#include "lowbit/sampling/sampler.h"
#include "lowbit/tokenizer/vocab.h"

namespace lowbit {

struct GenerateOptions {
  std::string prompt;
  int64_t n_predict = 128;
  int64_t n_ctx = 0;  // 0: the model's training context
  int threads = 0;
  bool kv_f16 = false;  // F16 KV cache
  SamplerParams sampling;
  Comm* comm = nullptr;  // the model's ranks; nullptr: one rank
};

struct GenerateStats {
  std::vector<int32_t> prompt_tokens, generated;
  double prompt_seconds = 0, generate_seconds = 0;
  bool stopped_at_eos = false;
};

Expected<GenerateStats> Generate(const LlamaModel& model, const Vocab& vocab, const GenerateOptions& opts,
                                 const std::function<void(const std::string&)>& on_text);

}  // namespace lowbit

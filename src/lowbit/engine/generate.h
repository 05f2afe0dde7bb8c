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

// Speculative decoding (engine/speculative.h): drafts checked k + 1 tokens per forward, with the
// target model's output (identical text when greedy; the target's distribution when sampling).
struct SpeculativeOptions {
  bool lookup = false;                // drafts from n-grams of the prompt and the text so far
  const LlamaModel* draft = nullptr;  // a draft model with the target's vocabulary
  int draft_max = 16;                 // drafted tokens per forward, at most
  int draft_min = 0;                  // a shorter draft is not checked (a plain step instead)
  bool adaptive = true;               // draft length from the running accept rate and costs; false: draft_max
  int ngram_min = 1, ngram_max = 4;   // lookup: n-gram lengths
  bool enabled() const { return lookup || draft != nullptr; }
};

struct GenerateOptions {
  std::string prompt;
  int64_t n_predict = 128;
  int64_t n_ctx = 0;  // 0: the model's training context
  int threads = 0;
  bool kv_f16 = false;  // F16 KV cache
  SamplerParams sampling;
  Comm* comm = nullptr;  // the model's ranks; nullptr: one rank
  SpeculativeOptions spec;  // one rank only
};

struct GenerateStats {
  std::vector<int32_t> prompt_tokens, generated;
  double prompt_seconds = 0, generate_seconds = 0;
  bool stopped_at_eos = false;
  int64_t drafted = 0, accepted = 0;  // speculative decoding: drafted tokens, and those accepted
  int64_t forwards = 0;               // forward passes of the target model after the prompt
};

Expected<GenerateStats> Generate(const LlamaModel& model, const Vocab& vocab, const GenerateOptions& opts,
                                 const std::function<void(const std::string&)>& on_text);

}  // namespace lowbit

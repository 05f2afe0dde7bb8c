// Perplexity as llama.cpp's `llama-perplexity` computes it: tokenize the whole text (BOS first when
// the vocabulary asks for it), cut it into chunks of `ctx` tokens, put BOS in place of each chunk's
// first token, run the chunk, and score the second half: the mean negative log-likelihood of each
// token given everything before it in its chunk. PPL = exp(mean NLL); the uncertainty is
// PPL * stddev(NLL) / sqrt(count - 1), as llama.cpp prints it.
//
// Tensor parallel (`comm` with several ranks): every rank calls Perplexity; rank 0 tokenizes the
// text (the others may pass an empty one), broadcasts the tokens, scores and writes or reads the
// distribution files; the others run the same chunks. The result is complete on rank 0.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/model/llama.h"
#include "lowbit/tokenizer/vocab.h"

namespace lowbit {

struct PerplexityOptions {
  int64_t ctx = 0;     // 0: the model's training context
  int64_t chunks = -1; // -1: all
  int threads = 0;
  // Reference distribution file (lowbit's format: "LBLOGP01", i64 ctx, n_vocab, n_chunks, n_scored,
  // n_tokens, i32 tokens[n_tokens], then f32 log-probabilities [n_scored][n_vocab]).
  std::string save_logits;  // write it
  std::string kl_base;      // compare with it
  bool kv_f16 = false;      // F16 KV cache
  Comm* comm = nullptr;     // the model's ranks; nullptr: one rank
};

struct KlStats {
  double mean = 0, median = 0, max = 0;  // KL(base || this) per scored token, nats
  double top1_agreement = 0;             // fraction where the most likely token is the same
  double mean_delta_p = 0;               // mean of p(correct) - p_base(correct)
  double ppl_base = 0, ppl_ratio = 0;
};

struct PerplexityResult {
  double ppl = 0, ppl_err = 0;
  int64_t n_tokens = 0;   // tokens in the text (with BOS)
  int64_t n_chunks = 0;
  int64_t n_scored = 0;
  std::vector<double> running_ppl;  // after each chunk
  bool has_kl = false;
  KlStats kl;
};

// `on_chunk(i, running_ppl)` is called after each chunk (for live output); may be empty.
Expected<PerplexityResult> Perplexity(const LlamaModel& model, const Vocab& vocab, const std::string& text,
                                      const PerplexityOptions& opts,
                                      const std::function<void(int64_t, double)>& on_chunk = {});

}  // namespace lowbit

#include "lowbit/eval/perplexity.h"

#include <algorithm>
#include <cmath>

#include "lowbit/tokenizer/spm.h"

namespace lowbit {

Expected<PerplexityResult> Perplexity(const LlamaModel& model, const Vocab& vocab, const std::string& text,
                                      const PerplexityOptions& opts,
                                      const std::function<void(int64_t, double)>& on_chunk) {
  if (vocab.model != "llama") {
    return Errorf("tokenizer model '{}' is not supported yet (only SentencePiece-style 'llama')", vocab.model);
  }
  const LlamaConfig& c = model.config();
  const int64_t ctx = opts.ctx > 0 ? opts.ctx : c.n_ctx_train;
  if (ctx < 2) return Errorf("context {} is too small to score anything", ctx);
  SpmTokenizer tok(vocab);
  std::vector<int32_t> tokens;
  const bool add_bos = vocab.add_bos != 0 && vocab.bos_id >= 0;
  if (add_bos) tokens.push_back(static_cast<int32_t>(vocab.bos_id));
  const std::vector<int32_t> body = tok.Encode(text);
  tokens.insert(tokens.end(), body.begin(), body.end());
  PerplexityResult r;
  r.n_tokens = static_cast<int64_t>(tokens.size());
  int64_t n_chunk = r.n_tokens / ctx;
  if (opts.chunks >= 0) n_chunk = std::min(n_chunk, opts.chunks);
  if (n_chunk == 0) {
    return Errorf("the text has {} tokens, fewer than one context of {}; use a smaller -c", r.n_tokens, ctx);
  }
  r.n_chunks = n_chunk;
  LlamaSession session(model, ctx, opts.threads);
  const int64_t first = ctx / 2;
  double nll = 0, nll2 = 0;
  int64_t count = 0;
  std::vector<double> lse_scratch;
  for (int64_t i = 0; i < n_chunk; ++i) {
    const int64_t start = i * ctx;
    for (int64_t j = 0; j < ctx - 1; ++j) {
      const int32_t t = (j == 0 && add_bos) ? static_cast<int32_t>(vocab.bos_id) : tokens[start + j];
      const float* logits = session.Forward(t, j);
      if (j < first) continue;
      const float mx = *std::max_element(logits, logits + c.n_vocab);
      double sum = 0;
      for (int64_t v = 0; v < c.n_vocab; ++v) sum += std::exp(static_cast<double>(logits[v]) - mx);
      const double lp = static_cast<double>(logits[tokens[start + j + 1]]) - mx - std::log(sum);
      nll -= lp;
      nll2 += lp * lp;
      ++count;
    }
    r.running_ppl.push_back(std::exp(nll / static_cast<double>(count)));
    if (on_chunk) on_chunk(i, r.running_ppl.back());
  }
  r.n_scored = count;
  const double mean = nll / static_cast<double>(count);
  r.ppl = std::exp(mean);
  const double var = nll2 / static_cast<double>(count) - mean * mean;
  r.ppl_err = var > 0 && count > 1 ? std::sqrt(var / static_cast<double>(count - 1)) * r.ppl : 0;
  return r;
}

}  // namespace lowbit

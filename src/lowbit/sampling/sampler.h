// Token sampling from logits, in llama.cpp's default order: penalties over the last
// `repeat_last_n` tokens (repetition, then OpenAI's frequency and presence), then top-k, top-p, min-p, temperature, and a draw from the remaining
// distribution with a seeded RNG. temp <= 0 is greedy (argmax after the penalty).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace lowbit {

struct SamplerParams {
  float temp = 0.8f;
  int top_k = 40;          // <= 0: off
  float top_p = 0.95f;     // >= 1: off
  float min_p = 0.05f;     // <= 0: off
  float repeat_penalty = 1.0f;  // 1: off
  float frequency_penalty = 0.0f;  // logit -= frequency_penalty * count (0: off)
  float presence_penalty = 0.0f;   // logit -= presence_penalty if the token occurs (0: off)
  int repeat_last_n = 64;
  uint64_t seed = 0;
};

// A distribution over tokens as (token, probability) pairs, probabilities summing to 1, most likely
// first; tokens not listed have probability 0.
using TokenDist = std::vector<std::pair<int32_t, float>>;

class Sampler {
 public:
  Sampler(const SamplerParams& p, int64_t n_vocab);

  // Picks the next token. `logits` is modified (penalties); `recent` are the tokens so far.
  int32_t Sample(float* logits, const std::vector<int32_t>& recent);

  // The distribution Sample draws from (after penalties, top-k, top-p, min-p and temperature);
  // greedy (temp <= 0) is a point mass on the argmax. `logits` is modified as by Sample.
  void Distribution(float* logits, const std::vector<int32_t>& recent, TokenDist* out);
  // A draw from `d` with this sampler's generator.
  int32_t Draw(const TokenDist& d);

  // Speculative sampling's rejection rule (Leviathan et al. 2023; Chen et al. 2023): `draft` was
  // drawn from q; with the target's distribution p it is accepted with probability
  // min(1, p(draft) / q(draft)); otherwise a token is drawn from max(0, p - q), normalized. The
  // result is distributed as p whatever q is. A point mass q (a prompt-lookup draft, or greedy
  // drafting) accepts with probability p(draft) and resamples from p without the draft. Returns the
  // token and sets *accepted.
  int32_t AcceptOrResample(const TokenDist& p, const TokenDist& q, int32_t draft, bool* accepted);

 private:
  // Penalties, then the candidates kept by top-k/top-p/min-p in cand_[0, keep) with probs_[i] =
  // exp((logit - max) / temp), unnormalized; returns keep. Not for greedy.
  int64_t Candidates(float* logits, const std::vector<int32_t>& recent);
  void Penalize(float* logits, const std::vector<int32_t>& recent);
  SamplerParams p_;
  std::mt19937_64 rng_;
  std::vector<float>& probs_scratch() { return probs_; }
  std::vector<std::pair<float, int32_t>> cand_;  // reused: no allocation per token
  std::vector<float> probs_;
  std::vector<std::pair<int32_t, int32_t>> counts_;  // (token, occurrences) in the penalty window
  std::vector<float> q_dense_;  // AcceptOrResample: q by token id (zero outside q's support)
};

}  // namespace lowbit

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

class Sampler {
 public:
  Sampler(const SamplerParams& p, int64_t n_vocab);

  // Picks the next token. `logits` is modified (penalties); `recent` are the tokens so far.
  int32_t Sample(float* logits, const std::vector<int32_t>& recent);

 private:
  SamplerParams p_;
  std::mt19937_64 rng_;
  std::vector<float>& probs_scratch() { return probs_; }
  std::vector<std::pair<float, int32_t>> cand_;  // reused: no allocation per token
  std::vector<float> probs_;
  std::vector<std::pair<int32_t, int32_t>> counts_;  // (token, occurrences) in the penalty window
};

}  // namespace lowbit

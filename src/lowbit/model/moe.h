// Mixture-of-experts routing (llama.cpp's build_moe_ffn with softmax gating, as llama / Mixtral,
// qwen2moe and qwen3moe use it): the router's logits of a token to the experts it runs and their
// weights. LlamaSession's MoeFfn (model/moe.cc) runs the chosen experts.
#pragma once

#include <cstdint>

namespace lowbit {

// One of a token's experts: which, with what weight, and (for the caller) the row where the
// token's copy is gathered for that expert.
struct ExpertChoice {
  int32_t expert = 0;
  int32_t row = 0;
  float weight = 0;
};

// probs = softmax(logits[0, n_expert)); out[0, k) = the k experts of largest probability, largest
// first (the lower index first among equal ones), weighted by their probabilities, divided by their
// sum (clamped below at 2^-14, as llama.cpp) when `normalize`. Rows are left alone.
void RouteExperts(const float* logits, int64_t n_expert, int64_t k, bool normalize, ExpertChoice* out);

}  // namespace lowbit

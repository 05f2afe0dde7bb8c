#include "lowbit/sampling/sampler.h"

#include <algorithm>
#include <cmath>

namespace lowbit {

Sampler::Sampler(const SamplerParams& p, int64_t n_vocab) : p_(p), rng_(p.seed) {
  cand_.resize(static_cast<size_t>(n_vocab));
  probs_.reserve(static_cast<size_t>(n_vocab));
  counts_.reserve(static_cast<size_t>(std::max(p.repeat_last_n, 0)));
}

int32_t Sampler::Sample(float* logits, const std::vector<int32_t>& recent) {
  const auto n = static_cast<int64_t>(cand_.size());
  if (p_.repeat_penalty != 1.0f && p_.repeat_last_n > 0) {
    // Each distinct recent token once, as llama.cpp: divide positive logits, multiply negative.
    const size_t from = recent.size() > static_cast<size_t>(p_.repeat_last_n) ? recent.size() - p_.repeat_last_n : 0;
    for (size_t i = from; i < recent.size(); ++i) {
      const int32_t t = recent[i];
      if (t < 0 || t >= n || std::find(recent.begin() + static_cast<long>(from), recent.begin() + static_cast<long>(i), t) !=
                                 recent.begin() + static_cast<long>(i)) {
        continue;
      }
      logits[t] = logits[t] > 0 ? logits[t] / p_.repeat_penalty : logits[t] * p_.repeat_penalty;
    }
  }
  if ((p_.frequency_penalty != 0.0f || p_.presence_penalty != 0.0f) && p_.repeat_last_n > 0) {
    const size_t from = recent.size() > static_cast<size_t>(p_.repeat_last_n) ? recent.size() - p_.repeat_last_n : 0;
    counts_.clear();
    for (size_t i = from; i < recent.size(); ++i) {
      const int32_t t = recent[i];
      if (t < 0 || t >= n) continue;
      auto it = std::find_if(counts_.begin(), counts_.end(), [t](const auto& c) { return c.first == t; });
      if (it == counts_.end()) counts_.emplace_back(t, 1);
      else ++it->second;
    }
    for (const auto& [t, count] : counts_) logits[t] -= static_cast<float>(count) * p_.frequency_penalty + p_.presence_penalty;
  }
  if (p_.temp <= 0) return static_cast<int32_t>(std::max_element(logits, logits + n) - logits);

  for (int64_t i = 0; i < n; ++i) cand_[i] = {logits[i], static_cast<int32_t>(i)};
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  int64_t keep = n;
  if (p_.top_k > 0 && p_.top_k < keep) {
    keep = p_.top_k;
    std::partial_sort(cand_.begin(), cand_.begin() + keep, cand_.end(), by_logit);
  } else {
    std::sort(cand_.begin(), cand_.end(), by_logit);
  }
  // Softmax over the kept candidates (sorted, largest first).
  std::vector<float>& probs = probs_scratch();
  probs.resize(static_cast<size_t>(keep));
  const float mx = cand_[0].first;
  double sum = 0;
  for (int64_t i = 0; i < keep; ++i) sum += probs[i] = std::exp(cand_[i].first - mx);
  if (p_.top_p < 1.0f) {
    double cum = 0;
    for (int64_t i = 0; i < keep; ++i) {
      cum += probs[i] / sum;
      if (cum >= p_.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  if (p_.min_p > 0) {
    for (int64_t i = 1; i < keep; ++i) {
      if (probs[i] < p_.min_p * probs[0]) {  // probs[0] is the largest (exp(0) = 1)
        keep = i;
        break;
      }
    }
  }
  // Temperature on the surviving logits, then draw.
  sum = 0;
  for (int64_t i = 0; i < keep; ++i) sum += probs[i] = std::exp((cand_[i].first - mx) / p_.temp);
  std::uniform_real_distribution<double> u(0.0, sum);
  double r = u(rng_), acc = 0;
  for (int64_t i = 0; i < keep; ++i) {
    acc += probs[i];
    if (r < acc) return cand_[i].second;
  }
  return cand_[keep - 1].second;
}

}  // namespace lowbit

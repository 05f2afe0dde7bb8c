#include "lowbit/sampling/sampler.h"

#include <algorithm>
#include <cmath>

#include "lowbit/base/check.h"

namespace lowbit {

Sampler::Sampler(const SamplerParams& p, int64_t n_vocab) : p_(p), rng_(p.seed) {
  cand_.resize(static_cast<size_t>(n_vocab));
  probs_.reserve(static_cast<size_t>(n_vocab));
  counts_.reserve(static_cast<size_t>(std::max(p.repeat_last_n, 0)));
}

void Sampler::Penalize(float* logits, const std::vector<int32_t>& recent) {
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
}

int64_t Sampler::Candidates(float* logits, const std::vector<int32_t>& recent) {
  const auto n = static_cast<int64_t>(cand_.size());
  Penalize(logits, recent);
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
  // Temperature on the surviving logits.
  for (int64_t i = 0; i < keep; ++i) probs[i] = std::exp((cand_[i].first - mx) / p_.temp);
  return keep;
}

int32_t Sampler::Sample(float* logits, const std::vector<int32_t>& recent) {
  if (p_.temp <= 0) {
    Penalize(logits, recent);
    return static_cast<int32_t>(std::max_element(logits, logits + static_cast<int64_t>(cand_.size())) - logits);
  }
  const int64_t keep = Candidates(logits, recent);
  const std::vector<float>& probs = probs_;
  double sum = 0;
  for (int64_t i = 0; i < keep; ++i) sum += probs[i];
  std::uniform_real_distribution<double> u(0.0, sum);
  double r = u(rng_), acc = 0;
  for (int64_t i = 0; i < keep; ++i) {
    acc += probs[i];
    if (r < acc) return cand_[i].second;
  }
  return cand_[keep - 1].second;
}

void Sampler::Distribution(float* logits, const std::vector<int32_t>& recent, TokenDist* out) {
  out->clear();
  if (p_.temp <= 0) {
    Penalize(logits, recent);
    out->emplace_back(static_cast<int32_t>(std::max_element(logits, logits + static_cast<int64_t>(cand_.size())) - logits), 1.0f);
    return;
  }
  const int64_t keep = Candidates(logits, recent);
  double sum = 0;
  for (int64_t i = 0; i < keep; ++i) sum += probs_[i];
  for (int64_t i = 0; i < keep; ++i) out->emplace_back(cand_[i].second, static_cast<float>(probs_[i] / sum));
}

int32_t Sampler::Draw(const TokenDist& d) {
  LOWBIT_CHECK(!d.empty());
  double sum = 0;
  for (const auto& e : d) sum += e.second;
  std::uniform_real_distribution<double> u(0.0, sum);
  const double r = u(rng_);
  double acc = 0;
  for (const auto& [t, pr] : d) {
    acc += pr;
    if (r < acc) return t;
  }
  return d.back().first;
}

int32_t Sampler::AcceptOrResample(const TokenDist& p, const TokenDist& q, int32_t draft, bool* accepted) {
  double p_d = 0, q_d = 0;
  for (const auto& [t, pr] : p) {
    if (t == draft) p_d = pr;
  }
  for (const auto& [t, pr] : q) {
    if (t == draft) q_d = pr;
  }
  *accepted = false;
  if (p_d > 0) {
    // u < p/q with u uniform in [0, 1): accepted with probability min(1, p/q); q_d = 0 cannot happen
    // for a token drawn from q, and is treated as certain acceptance of a possible token.
    std::uniform_real_distribution<double> u(0.0, 1.0);
    if (q_d <= p_d || u(rng_) * q_d < p_d) {
      *accepted = true;
      return draft;
    }
  }
  // Residual max(0, p - q): q by token id in a dense scratch (cleared again below).
  if (q_dense_.size() < cand_.size()) q_dense_.assign(cand_.size(), 0.0f);
  for (const auto& [t, pr] : q) q_dense_[static_cast<size_t>(t)] = pr;
  double sum = 0;
  for (const auto& [t, pr] : p) sum += std::max(0.0, static_cast<double>(pr) - q_dense_[static_cast<size_t>(t)]);
  int32_t out = -1;
  if (sum > 0) {
    std::uniform_real_distribution<double> u(0.0, sum);
    const double r = u(rng_);
    double acc = 0;
    for (const auto& [t, pr] : p) {
      const double w = std::max(0.0, static_cast<double>(pr) - q_dense_[static_cast<size_t>(t)]);
      if (w <= 0) continue;
      out = t;  // the last positive one, should rounding leave r at the end
      acc += w;
      if (r < acc) break;
    }
  }
  for (const auto& [t, pr] : q) q_dense_[static_cast<size_t>(t)] = 0.0f;
  // p <= q everywhere (p == q up to rounding): rejection had probability ~0; draw from p.
  return out >= 0 ? out : Draw(p);
}

}  // namespace lowbit

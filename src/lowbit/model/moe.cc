// The mixture-of-experts FFN of the one forward: the router picks each token's experts, the tokens
// are grouped by expert, and each chosen expert's gate/up/down runs over its own tokens only, so a
// step reads the bytes of the experts its tokens chose and no others (decode: n_expert_used of
// n_expert). Facts from llama.cpp's build_moe_ffn (src/llama-graph.cpp) and its qwen2moe shared expert.
#include "lowbit/model/moe.h"

#include <algorithm>
#include <cmath>

#include "lowbit/base/check.h"
#include "lowbit/kernels/matvec.h"
#include "lowbit/model/llama.h"

namespace lowbit {

void RouteExperts(const float* logits, int64_t n_expert, int64_t k, bool normalize, ExpertChoice* out) {
  // Softmax as ggml_soft_max computes it: the maximum subtracted, the sum in double, one reciprocal.
  float max = logits[0];
  for (int64_t e = 1; e < n_expert; ++e) max = std::max(max, logits[e]);
  double sum = 0;
  for (int64_t e = 0; e < n_expert; ++e) sum += std::exp(static_cast<double>(logits[e] - max));
  const auto inv = static_cast<float>(1.0 / sum);
  // The k largest, kept sorted (k is a handful: insertion beats a heap).
  int64_t n = 0;
  for (int64_t e = 0; e < n_expert; ++e) {
    const float p = std::exp(logits[e] - max) * inv;
    if (n == k && !(p > out[k - 1].weight)) continue;
    int64_t at = n < k ? n++ : k - 1;
    for (; at > 0 && p > out[at - 1].weight; --at) out[at] = out[at - 1];
    out[at].expert = static_cast<int32_t>(e);
    out[at].weight = p;
  }
  if (!normalize) return;
  double total = 0;
  for (int64_t j = 0; j < k; ++j) total += out[j].weight;
  const float denom = std::max(static_cast<float>(total), 6.103515625e-5f);
  for (int64_t j = 0; j < k; ++j) out[j].weight /= denom;
}

void LlamaSession::MoeFfn(int64_t l, int64_t n) {
  const LlamaModel::Layer& L = m_.layers[l];
  const int64_t E = c_.n_embd, ne = c_.n_expert, k = c_.n_expert_used, ff = m_.local_ff();
  // Route every token: its k experts, their weights.
  Linear(L.router, xb_.data(), n, router_.data());
  for (int64_t b = 0; b < n; ++b) RouteExperts(router_.data() + b * ne, ne, k, c_.expert_weights_norm, route_.data() + b * k);
  // Group the n * k (token, expert) pairs by expert: expert e's tokens take rows [first[e], first[e +
  // 1]) of the gathered inputs, in token order. One token needs no copy: every expert reads xb_.
  int64_t* first = expert_rows_.data();
  int64_t* next = first + ne + 1;
  std::fill(first, first + ne + 1, 0);
  for (int64_t i = 0; i < n * k; ++i) ++first[route_[i].expert + 1];
  for (int64_t e = 0; e < ne; ++e) first[e + 1] += first[e];
  std::copy(first, first + ne, next);
  for (int64_t i = 0; i < n * k; ++i) {
    const int64_t row = next[route_[i].expert]++;
    route_[i].row = static_cast<int32_t>(row);
    if (n > 1) std::copy_n(xb_.data() + (i / k) * E, E, xe_.data() + row * E);
  }
  // Gate and up of every chosen expert (one hand-off for a decode step), SwiGLU, then down.
  expert_jobs_.clear();
  for (int64_t e = 0; e < ne; ++e) {
    const int64_t r0 = first[e], count = first[e + 1] - r0;
    if (count == 0) continue;
    const float* x = n > 1 ? xe_.data() + r0 * E : xb_.data();
    expert_jobs_.push_back({&L.gate_exps[e], x, hb_.data() + r0 * ff, nullptr, count});
    expert_jobs_.push_back({&L.up_exps[e], x, hb2_.data() + r0 * ff, nullptr, count});
  }
  Linears(expert_jobs_, n);
  SwiGlu(n * k * ff);
  expert_jobs_.clear();
  for (int64_t e = 0; e < ne; ++e) {
    const int64_t r0 = first[e], count = first[e + 1] - r0;
    if (count > 0) expert_jobs_.push_back({&L.down_exps[e], hb_.data() + r0 * ff, ye_.data() + r0 * E, nullptr, count});
  }
  Linears(expert_jobs_, n);
  // The shared expert (qwen2moe) into proj_, and its gate sigmoid(w . x) per token (w is F32).
  const bool shared = c_.n_ff_shexp > 0;
  if (shared) {
    Linears({{&L.shexp_gate, xb_.data(), hb_.data(), nullptr}, {&L.shexp_up, xb_.data(), hb2_.data(), nullptr}}, n);
    SwiGlu(n * m_.local_ff_shexp());
    Linear(L.shexp_down, hb_.data(), n, proj_.data());
  }
  // proj_ = sum_j w_j expert_j(x) (+ gate * shared(x)), added in llama.cpp's order: the weighted
  // experts in their rank order, then the shared expert.
  const auto* gate_w = reinterpret_cast<const float*>(L.shexp_gate_inp.data);
  for (int64_t b = 0; b < n; ++b) {
    const ExpertChoice* r = route_.data() + b * k;
    float* out = proj_.data() + b * E;
    const float g = shared ? 1.0f / (1.0f + std::exp(-Dot(gate_w, xb_.data() + b * E, E))) : 0.0f;
    for (int64_t i = 0; i < E; ++i) {
      float acc = r[0].weight * ye_[r[0].row * E + i];
      for (int64_t j = 1; j < k; ++j) acc += r[j].weight * ye_[r[j].row * E + i];
      out[i] = shared ? acc + g * out[i] : acc;
    }
  }
}

}  // namespace lowbit

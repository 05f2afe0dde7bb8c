#include "lowbit/train/optimizer.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace lowbit::train {
namespace {

constexpr int64_t kChunk = 1 << 15;

size_t CountChunks(const std::vector<Param*>& params) {
  size_t n = 0;
  for (const Param* p : params) n += static_cast<size_t>((p->size() + kChunk - 1) / kChunk);
  return n;
}

// Runs fn(chunk index, param, begin, end) over every param's elements in chunks spread over the pool.
template <typename F>
void ForEachChunk(const std::vector<Param*>& params, ThreadPool* pool, F&& fn) {
  std::vector<std::pair<Param*, int64_t>> chunks;  // (param, first element)
  for (Param* p : params) {
    for (int64_t i = 0; i < p->size(); i += kChunk) chunks.emplace_back(p, i);
  }
  auto run = [&](size_t b, size_t e) {
    for (size_t c = b; c < e; ++c) {
      Param* p = chunks[c].first;
      const int64_t i0 = chunks[c].second;
      fn(c, *p, i0, std::min(p->size(), i0 + kChunk));
    }
  };
  if (pool != nullptr && pool->size() > 1 && chunks.size() > 1) pool->ParallelFor(chunks.size(), run, 1);
  else run(0, chunks.size());
}

}  // namespace

Param::Param(std::string n, int64_t r, int64_t c, bool wd)
    : name(std::move(n)), rows(r), cols(c), value(static_cast<size_t>(r * c)), grad(static_cast<size_t>(r * c)),
      m(static_cast<size_t>(r * c)), v(static_cast<size_t>(r * c)), decay(wd) {}

float ScheduledLr(int64_t step, int64_t total, int64_t warmup, float lr, float min_ratio) {
  if (warmup > 0 && step < warmup) return lr * static_cast<float>(step + 1) / static_cast<float>(warmup);
  const int64_t span = std::max<int64_t>(1, total - warmup - 1);
  const double t = std::clamp(static_cast<double>(step - warmup) / static_cast<double>(span), 0.0, 1.0);
  const double cosine = 0.5 * (1.0 + std::cos(std::numbers::pi * t));
  return static_cast<float>(lr * (min_ratio + (1.0 - min_ratio) * cosine));
}

double GradNorm(const std::vector<Param*>& params, ThreadPool* pool) {
  std::vector<double> partial(CountChunks(params), 0.0);
  ForEachChunk(params, pool, [&](size_t idx, Param& p, int64_t b, int64_t e) {
    double s = 0;
    for (int64_t i = b; i < e; ++i) s += static_cast<double>(p.grad[i]) * p.grad[i];
    partial[idx] = s;
  });
  double total = 0;
  for (double s : partial) total += s;
  return std::sqrt(total);
}

const Param* FirstNonFiniteGrad(const std::vector<Param*>& params) {
  for (const Param* p : params) {
    for (float g : p->grad) {
      if (!std::isfinite(g)) return p;
    }
  }
  return nullptr;
}

void ScaleGrads(const std::vector<Param*>& params, float s, ThreadPool* pool) {
  ForEachChunk(params, pool, [&](size_t, Param& p, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) p.grad[i] *= s;
  });
}

void ZeroGrads(const std::vector<Param*>& params, ThreadPool* pool) {
  ForEachChunk(params, pool, [&](size_t, Param& p, int64_t b, int64_t e) { std::fill(p.grad.begin() + b, p.grad.begin() + e, 0.0f); });
}

void AdamWStep(const std::vector<Param*>& params, const AdamWOptions& o, float lr, int64_t t, ThreadPool* pool) {
  const double bc1 = 1.0 - std::pow(static_cast<double>(o.beta1), static_cast<double>(t));
  const double bc2 = 1.0 - std::pow(static_cast<double>(o.beta2), static_cast<double>(t));
  const float step = static_cast<float>(lr / bc1), inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  ForEachChunk(params, pool, [&](size_t, Param& p, int64_t b, int64_t e) {
    const float decay = p.decay ? lr * o.weight_decay : 0.0f;
    for (int64_t i = b; i < e; ++i) {
      const float g = p.grad[i];
      p.m[i] = o.beta1 * p.m[i] + (1.0f - o.beta1) * g;
      p.v[i] = o.beta2 * p.v[i] + (1.0f - o.beta2) * g * g;
      p.value[i] -= decay * p.value[i];
      p.value[i] -= step * p.m[i] / (std::sqrt(p.v[i]) * inv_sqrt_bc2 + o.eps);
    }
  });
}

}  // namespace lowbit::train

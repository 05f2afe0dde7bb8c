#include "lowbit/train/self_data.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <thread>

#include "lowbit/numeric/half.h"
#include "lowbit/sampling/sampler.h"
#include "lowbit/train/data.h"

namespace lowbit::train {

Expected<std::vector<std::vector<int32_t>>> SampleSequences(const LlamaModel& model, int32_t bos, int64_t n, int64_t T,
                                                            uint64_t seed, int threads,
                                                            const std::function<void(int64_t done)>& on_sequence,
                                                            std::vector<uint16_t>* teacher_logp) {
  if (bos < 0) return Errorf("the model's vocabulary has no BOS token to start generated text from");
  if (n < 1 || T < 1) return Errorf("need at least one sequence of one token");
  // Positions 0..T-1 run through the model; the token sampled at T-1 is the last target.
  if (T > model.config().n_ctx_train && model.config().n_ctx_train > 0) {
    return Errorf("sequences of {} tokens are longer than the model's context {}", T, model.config().n_ctx_train);
  }
  std::vector<std::vector<int32_t>> out(static_cast<size_t>(n));
  const int64_t V = model.config().n_vocab;
  if (teacher_logp != nullptr) teacher_logp->assign(static_cast<size_t>(n * T * V), 0);
  std::atomic<int64_t> next{0}, done{0};
  std::mutex mu;
  const int workers = std::max(1, std::min<int>(threads, static_cast<int>(n)));
  auto work = [&] {
    LlamaSession session(model, SessionOptions{.n_ctx = T, .threads = 1, .max_batch = 1});
    std::vector<float> logits(static_cast<size_t>(model.config().n_vocab));
    for (int64_t i = next++; i < n; i = next++) {
      SamplerParams p;
      p.temp = 1.0f;
      p.top_k = 0;
      p.top_p = 1.0f;
      p.min_p = 0.0f;
      p.seed = Mix64(seed ^ Mix64(static_cast<uint64_t>(i)));
      Sampler sampler(p, model.config().n_vocab);
      std::vector<int32_t>& seq = out[static_cast<size_t>(i)];
      seq.reserve(static_cast<size_t>(T + 1));
      seq.push_back(bos);
      for (int64_t pos = 0; pos < T; ++pos) {
        const float* l = session.Forward(seq.back(), pos);
        std::copy(l, l + V, logits.begin());
        if (teacher_logp != nullptr) {
          const float mx = *std::max_element(l, l + V);
          double sum = 0;
          for (int64_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(l[v]) - mx);
          const double lse = std::log(sum) + mx;
          uint16_t* dst = teacher_logp->data() + (i * T + pos) * V;
          for (int64_t v = 0; v < V; ++v) dst[v] = Fp32ToFp16(static_cast<float>(std::max(-1e4, static_cast<double>(l[v]) - lse)));
        }
        seq.push_back(sampler.Sample(logits.data(), seq));
      }
      const int64_t d = ++done;
      if (on_sequence) {
        std::lock_guard<std::mutex> lock(mu);
        on_sequence(d);
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < workers; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  return out;
}

}  // namespace lowbit::train

// How far N tensor-parallel ranks move the logits from one process's, along one process's greedy
// path (teacher-forced, ranks as threads: ThreadComm, rank-order sums), and where greedy text would
// first part: the largest logit difference over the steps, the first step whose argmax differs, and
// one process's top-1/top-2 gap there; plus how many steps have a gap below 0.1 at all.
// Usage: lowbit_tp_divergence MODEL.gguf [steps, default 32] [max ranks, default 4]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <thread>
#include <vector>

#include "lowbit/formats/gguf_reader.h"
#include "lowbit/model/llama.h"

namespace {

using lowbit::GgufFile;
using lowbit::LlamaModel;

// Logits of each step: greedy when *path is empty (and filled), else along *path.
std::vector<std::vector<float>> Steps(const GgufFile& g, int ranks, const std::vector<int32_t>& prompt, std::vector<int32_t>* path,
                                      int steps) {
  std::vector<std::vector<float>> out;
  lowbit::ThreadCommGroup group(ranks);
  std::vector<std::thread> threads;
  const bool greedy = path->empty();
  for (int r = 0; r < ranks; ++r) {
    threads.emplace_back([&, r] {
      auto m = LlamaModel::Load(g, r, ranks);
      if (!m.ok()) {
        std::fprintf(stderr, "%s\n", m.status().message().c_str());
        std::exit(1);
      }
      lowbit::SessionOptions o;
      o.n_ctx = static_cast<int64_t>(prompt.size()) + steps + 1;
      o.comm = group.rank(r);
      lowbit::LlamaSession s(*m, o);
      const int64_t V = m->config().n_vocab;
      const float* l = s.Forward(prompt, 0);
      int64_t pos = static_cast<int64_t>(prompt.size());
      for (int i = 0; i < steps; ++i) {
        if (r == 0) out.emplace_back(l, l + V);
        const int32_t next = greedy ? static_cast<int32_t>(std::max_element(l, l + V) - l) : (*path)[i];
        if (greedy && r == 0) path->push_back(next);
        l = s.Forward(next, pos++);
      }
    });
  }
  for (auto& t : threads) t.join();
  return out;
}

float Gap(std::vector<float> l) {
  std::partial_sort(l.begin(), l.begin() + 2, l.end(), std::greater<>());
  return l[0] - l[1];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL.gguf [steps] [max ranks]\n", argv[0]);
    return 2;
  }
  const int steps = argc > 2 ? std::atoi(argv[2]) : 32, max_ranks = argc > 3 ? std::atoi(argv[3]) : 4;
  auto g = GgufFile::Open(argv[1]);
  if (!g.ok()) {
    std::fprintf(stderr, "%s\n", g.status().message().c_str());
    return 1;
  }
  const std::vector<int32_t> prompt = {1, 9038, 2501, 263, 931};  // BOS "Once upon a time" in Llama's vocabulary
  std::vector<int32_t> path;
  const auto one = Steps(*g, 1, prompt, &path, steps);
  int small = 0;
  for (const auto& l : one) small += Gap(l) < 0.1f;
  std::printf("%s: one process's top-2 gap is below 0.1 at %d of %d greedy steps\n", argv[1], small, steps);
  for (int n = 2; n <= max_ranks; ++n) {
    const auto got = Steps(*g, n, prompt, &path, steps);
    double worst = 0;
    int first = -1;
    for (int i = 0; i < steps; ++i) {
      for (size_t v = 0; v < one[i].size(); ++v) worst = std::max(worst, std::fabs(static_cast<double>(one[i][v]) - got[i][v]));
      const auto a = std::max_element(one[i].begin(), one[i].end()) - one[i].begin();
      const auto b = std::max_element(got[i].begin(), got[i].end()) - got[i].begin();
      if (a != b && first < 0) first = i;
    }
    if (first < 0) std::printf("%d ranks: largest logit difference %.3g; same greedy token at all %d steps\n", n, worst, steps);
    else std::printf("%d ranks: largest logit difference %.3g; greedy token first differs at step %d, where one process's top-2 gap is %.3g\n",
                     n, worst, first, Gap(one[first]));
  }
  return 0;
}

// Continuous batching changes no logit: tokens of several sequences run as one ForwardBatch give
// each sequence, bit for bit, the logits it gets when it runs alone (prompt as one batch, then one
// token per step), whatever the weight type, the batch size and the thread count. This is the
// property behind "batching changes no token" in the server (engine/scheduler.h).
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "lowbit/model/llama.h"
#include "model/synth_tiny.h"

namespace lowbit {
namespace {

using Logits = std::vector<float>;

// Greedy continuation of `prompt` alone: the logits after the prompt, then after each of `steps`
// decoded tokens.
std::vector<Logits> Alone(const LlamaModel& m, const std::vector<int32_t>& prompt, int steps, int threads) {
  LlamaSession s(m, SessionOptions{.n_ctx = 64, .threads = threads, .max_batch = 64, .batch_invariant = true});
  const int64_t V = m.config().n_vocab;
  std::vector<Logits> out;
  const float* l = s.Forward(prompt, 0);
  int64_t pos = static_cast<int64_t>(prompt.size());
  for (int i = 0;; ++i) {
    out.emplace_back(l, l + V);
    if (i == steps) break;
    const int32_t next = static_cast<int32_t>(std::max_element(l, l + V) - l);
    l = s.Forward(next, pos++);
  }
  return out;
}

struct Seq {
  std::vector<int32_t> prompt;
  int start_step;  // the batch step in which its prompt joins
  size_t fed = 0;  // prompt tokens fed so far
  int64_t pos = 0;
  int32_t next = -1;
  std::vector<Logits> got;
};

// The sequences share one session; at every step each running sequence feeds its next decode
// token and each joining one a chunk of at most `chunk` prompt tokens, all in one batch.
std::vector<std::vector<Logits>> Mixed(const LlamaModel& m, std::vector<Seq> seqs, int steps, int threads, int64_t chunk) {
  SessionOptions o;
  o.n_ctx = 64;
  o.threads = threads;
  o.n_seq = static_cast<int>(seqs.size()) + 1;  // slot 0 stays unused: slots are independent
  o.batch_invariant = true;
  LlamaSession s(m, o);
  const int64_t V = m.config().n_vocab;
  for (int step = 0;; ++step) {
    std::vector<BatchToken> batch;
    std::vector<size_t> owner;
    for (size_t i = 0; i < seqs.size(); ++i) {
      Seq& q = seqs[i];
      if (step < q.start_step || static_cast<int>(q.got.size()) > steps) continue;
      if (q.fed < q.prompt.size()) {
        const size_t end = std::min(q.prompt.size(), q.fed + static_cast<size_t>(chunk));
        for (; q.fed < end; ++q.fed) {
          batch.push_back({q.prompt[q.fed], static_cast<int32_t>(i + 1), q.pos++, q.fed + 1 == q.prompt.size()});
          if (batch.back().logits) owner.push_back(i);
        }
      } else {
        batch.push_back({q.next, static_cast<int32_t>(i + 1), q.pos++, true});
        owner.push_back(i);
      }
    }
    if (batch.empty()) break;
    const float* l = s.ForwardBatch(batch);
    for (size_t k = 0; k < owner.size(); ++k) {
      Seq& q = seqs[owner[k]];
      const float* row = l + static_cast<int64_t>(k) * V;
      q.got.emplace_back(row, row + V);
      q.next = static_cast<int32_t>(std::max_element(row, row + V) - row);
    }
  }
  std::vector<std::vector<Logits>> out;
  for (Seq& q : seqs) out.push_back(std::move(q.got));
  return out;
}

class Batching : public ::testing::TestWithParam<const char*> {};

TEST_P(Batching, EachSequenceGetsTheLogitsItGetsAlone) {
  testing::TempDir dir;
  auto g = testing::SynthTiny(dir, GetParam());
  ASSERT_TRUE(g.ok()) << g.status().message();
  auto m = LlamaModel::Load(*g);
  ASSERT_TRUE(m.ok()) << m.status().message();
  const std::vector<std::vector<int32_t>> prompts = {
      {1, 40, 300, 7, 128, 9}, {1, 5}, {1, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89}, {1, 400, 2}, {1, 9, 9, 9, 9}};
  const int steps = 6;
  for (int threads : {1, 2}) {
    std::vector<std::vector<Logits>> want;
    for (const auto& p : prompts) want.push_back(Alone(*m, p, steps, threads));
    for (int64_t chunk : {3, 64}) {
      std::vector<Seq> seqs;
      for (size_t i = 0; i < prompts.size(); ++i) seqs.push_back(Seq{.prompt = prompts[i], .start_step = static_cast<int>(i % 3)});
      const auto got = Mixed(*m, seqs, steps, threads, chunk);
      for (size_t i = 0; i < prompts.size(); ++i) {
        ASSERT_EQ(got[i].size(), want[i].size());
        for (size_t t = 0; t < want[i].size(); ++t) {
          EXPECT_EQ(std::memcmp(got[i][t].data(), want[i][t].data(), want[i][t].size() * sizeof(float)), 0)
              << GetParam() << ": sequence " << i << " step " << t << ", " << threads << " threads, prompt chunks of " << chunk;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, Batching,
                         ::testing::Values("F32", "F16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "IQ4_NL", "Q4_K", "Q5_K", "Q6_K",
                                           "Q2_K", "Q3_K", "IQ4_XS"));

}  // namespace
}  // namespace lowbit

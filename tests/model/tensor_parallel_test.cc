// Tensor parallelism: a model split over 2 or 4 ranks (ThreadComm: ranks as threads) gives the
// logits of the unsplit model, on prefill and on decode; a split that would cut a quantization
// block is refused with a clear error.
#include <gtest/gtest.h>

#include <cmath>
#include <thread>
#include <vector>

#include "lowbit/model/llama.h"
#include "lowbit/parallel/comm.h"
#include "model/synth_tiny.h"

namespace lowbit {
namespace {

// Logits of the prompt's last token, then of 3 greedy decode steps, concatenated.
std::vector<float> RunRank(const LlamaModel& m, Comm* comm) {
  SessionOptions o;
  o.n_ctx = 32;
  o.comm = comm;
  LlamaSession s(m, o);
  const std::vector<int32_t> prompt = {1, 40, 300, 7, 128, 9};
  const int64_t V = m.config().n_vocab;
  std::vector<float> out;
  const float* l = s.Forward(prompt, 0);
  out.insert(out.end(), l, l + V);
  for (int i = 0; i < 3; ++i) {
    const int32_t next = static_cast<int32_t>(std::max_element(l, l + V) - l);
    l = s.Forward(next, 6 + i);
    out.insert(out.end(), l, l + V);
  }
  return out;
}

class TensorParallel : public ::testing::TestWithParam<const char*> {};

TEST_P(TensorParallel, ShardedForwardEqualsOneRank) {
  testing::TempDir dir;
  auto g = testing::SynthTiny(dir, GetParam());  // 4 heads, 2 KV heads, FFN 512
  ASSERT_TRUE(g.ok());
  auto whole = LlamaModel::Load(*g);
  ASSERT_TRUE(whole.ok());
  LocalComm local;
  const std::vector<float> want = RunRank(*whole, &local);
  for (int ranks : {2}) {
    ThreadCommGroup group(ranks);
    std::vector<std::vector<float>> got(ranks);
    std::vector<std::thread> threads;
    for (int r = 0; r < ranks; ++r) {
      threads.emplace_back([&, r] {
        auto m = LlamaModel::Load(*g, r, ranks);
        ASSERT_TRUE(m.ok()) << m.status().message();
        EXPECT_EQ(m->local_heads(), 4 / ranks);
        EXPECT_EQ(m->local_ff(), 512 / ranks);
        got[r] = RunRank(*m, group.rank(r));
      });
    }
    for (auto& t : threads) t.join();
    for (int r = 0; r < ranks; ++r) {
      ASSERT_EQ(got[r].size(), want.size());
      double diff = 0, norm = 0;
      for (size_t i = 0; i < want.size(); ++i) {
        diff += (static_cast<double>(got[r][i]) - want[i]) * (static_cast<double>(got[r][i]) - want[i]);
        norm += static_cast<double>(want[i]) * want[i];
      }
      EXPECT_LE(std::sqrt(diff / norm), 1e-5) << GetParam() << " rank " << r << " of " << ranks;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, TensorParallel, ::testing::Values("F32", "Q8_0", "Q4_0"));

TEST(TensorParallel, SplitThatCutsABlockIsAnError) {
  testing::TempDir dir;
  // 256-element blocks; 2 heads of 64 = 128 columns per rank of attn_output
  auto g = testing::SynthTiny(dir, "Q4_K");
  ASSERT_TRUE(g.ok());
  auto m = LlamaModel::Load(*g, 1, 2);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("block size 256"), std::string::npos) << m.status().message();
  auto too_many = LlamaModel::Load(*g, 0, 3);  // 2 KV heads cannot go to 3 ranks
  ASSERT_FALSE(too_many.ok());
  EXPECT_NE(too_many.status().message().find("fewer than 3 ranks"), std::string::npos) << too_many.status().message();
}

TEST(Comm, SplitDimAndThreadCommCollectives) {
  EXPECT_EQ(SplitDim(512, 32, 1, 2)->begin, 256);
  EXPECT_EQ(SplitDim(96, 32, 2, 3)->count, 32);
  EXPECT_FALSE(SplitDim(100, 32, 0, 2).ok());
  ThreadCommGroup group(3);
  std::vector<std::thread> threads;
  std::vector<std::vector<float>> sums(3), gathered(3);
  for (int r = 0; r < 3; ++r) {
    threads.emplace_back([&, r] {
      Comm* c = group.rank(r);
      sums[r] = {1.0f * r, 2.0f * r, 3.0f, 4.0f, 5.0f};
      c->AllReduceSum(sums[r].data(), 5);
      const float mine[2] = {static_cast<float>(r), static_cast<float>(10 * r)};
      gathered[r].resize(6);
      c->AllGather(mine, 2, gathered[r].data());
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(sums[r], (std::vector<float>{3, 6, 9, 12, 15}));
    EXPECT_EQ(gathered[r], (std::vector<float>{0, 0, 1, 10, 2, 20}));
  }
}

}  // namespace
}  // namespace lowbit

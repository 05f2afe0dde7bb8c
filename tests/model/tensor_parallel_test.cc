// Tensor parallelism: a model split over 2, 3 or 4 ranks (ThreadComm: ranks as threads) gives the
// logits of the unsplit model, on prefill and on decode, for even and uneven splits, replicated KV
// heads, ranks without attention, and every way the weights can be held (views, a copy of only the
// rank's bytes, bytes streamed from rank 0); a shape that leaves a rank nothing is refused.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <thread>
#include <vector>

#include "lowbit/kernels/dot.h"
#include "lowbit/model/llama.h"
#include "lowbit/parallel/agree.h"
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

double RelativeL2(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
    norm += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(diff / norm);
}

// Runs fn(rank, comm) on `ranks` threads.
void OnRanks(int ranks, const std::function<void(int, Comm*)>& fn) {
  ThreadCommGroup group(ranks);
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r) threads.emplace_back([&, r] { fn(r, group.rank(r)); });
  for (auto& t : threads) t.join();
}

struct Case {
  const char* type;
  int ranks;
};

class TensorParallel : public ::testing::TestWithParam<Case> {};

TEST_P(TensorParallel, ShardedForwardEqualsOneRank) {
  const Case c = GetParam();
  testing::TempDir dir;
  auto g = testing::SynthTiny(dir, c.type);  // 4 heads of 64, 2 KV heads, FFN 512
  ASSERT_TRUE(g.ok());
  auto whole = LlamaModel::Load(*g);
  ASSERT_TRUE(whole.ok());
  LocalComm local;
  const std::vector<float> want = RunRank(*whole, &local);
  std::vector<std::vector<float>> got(c.ranks), copied(c.ranks);
  std::vector<int64_t> heads(c.ranks), ff(c.ranks), vocab(c.ranks);
  OnRanks(c.ranks, [&](int r, Comm* comm) {
    auto m = LlamaModel::Load(*g, r, c.ranks);
    ASSERT_TRUE(m.ok()) << m.status().message();
    heads[r] = m->local_heads();
    ff[r] = m->local_ff();
    vocab[r] = m->output.rows;
    got[r] = RunRank(*m, comm);
    // Only this rank's bytes, copied: the same numbers as the views into the file.
    auto mc = LlamaModel::Load(*g, LoadOptions{.rank = r, .ranks = c.ranks, .weights = LoadOptions::Weights::kCopy});
    ASSERT_TRUE(mc.ok()) << mc.status().message();
    EXPECT_GT(mc->owned_bytes(), 0u);
    copied[r] = RunRank(*mc, comm);
  });
  int64_t total_heads = 0, total_ff = 0, total_vocab = 0;
  for (int r = 0; r < c.ranks; ++r) {
    total_heads += heads[r];
    total_ff += ff[r];
    total_vocab += vocab[r];
    ASSERT_EQ(got[r].size(), want.size());
    EXPECT_LE(RelativeL2(got[r], want), 1e-5) << c.type << " rank " << r << " of " << c.ranks;
    EXPECT_EQ(copied[r], got[r]) << c.type << " rank " << r;  // bit for bit
    EXPECT_EQ(got[r], got[0]) << "every rank holds the same gathered logits";
  }
  EXPECT_EQ(total_heads, 4);
  EXPECT_EQ(total_ff, 512);
  EXPECT_EQ(total_vocab, 512);
}

INSTANTIATE_TEST_SUITE_P(Splits, TensorParallel,
                         ::testing::Values(Case{"F32", 2}, Case{"Q8_0", 2}, Case{"Q4_0", 2}, Case{"F32", 3}, Case{"Q4_0", 3},
                                           Case{"F32", 4}, Case{"Q8_0", 4}, Case{"Q4_K", 2}, Case{"Q4_K", 3}, Case{"Q6_K", 2}),
                         [](const auto& p) { return std::string(p.param.type) + "_" + std::to_string(p.param.ranks); });

TEST(TensorParallel, PlansSplitOnBlocksAndReplicateKvHeads) {
  testing::TempDir dir;
  auto f32 = testing::SynthTiny(dir, "F32");
  ASSERT_TRUE(f32.ok());
  // 2 KV groups of 2 heads over 3 ranks: query heads 2/1/1, the second KV head on ranks 1 and 2.
  std::vector<ShardPlan> p;
  for (int r = 0; r < 3; ++r) p.push_back(LlamaModel::Load(*f32, r, 3)->plan());
  EXPECT_TRUE(p[0].kv_replicated);
  EXPECT_EQ(p[0].heads.count, 2);
  EXPECT_EQ(p[0].kv_heads.count, 1);
  EXPECT_EQ(p[1].kv_heads.begin, 1);
  EXPECT_EQ(p[2].kv_heads.begin, 1);
  EXPECT_EQ(p[1].ff.count + p[2].ff.count + p[0].ff.count, 512);
  // Q4_K: attn_output's 256-column blocks hold all 4 heads, so one rank takes the attention, and
  // ffn_down's two blocks go to the others.
  auto q4k = testing::SynthTiny(dir, "Q4_K");
  ASSERT_TRUE(q4k.ok());
  auto r0 = LlamaModel::Load(*q4k, 0, 3);
  ASSERT_TRUE(r0.ok()) << r0.status().message();
  EXPECT_EQ(r0->local_heads(), 4);
  EXPECT_EQ(r0->local_ff(), 0);
  EXPECT_EQ(r0->plan().head_unit, 4);
  EXPECT_EQ(LlamaModel::Load(*q4k, 1, 3)->local_ff(), 256);
}

TEST(TensorParallel, ARankWithNothingToHoldIsAnError) {
  testing::TempDir dir;
  auto g = testing::SynthTiny(dir, "Q4_K");
  ASSERT_TRUE(g.ok());
  // 1 attention part and 2 FFN parts cannot feed 4 ranks.
  auto m = LlamaModel::Load(*g, 2, 4);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("rank 2 would hold no attention and no FFN"), std::string::npos) << m.status().message();
  EXPECT_NE(m.status().message().find("blocks of 256 columns"), std::string::npos) << m.status().message();
  EXPECT_FALSE(LlamaModel::Load(*g, 4, 4).ok());
}

TEST(TensorParallel, EachRankHoldsItsShareOfTheSplitWeights) {
  testing::TempDir dir;
  auto g = testing::SynthTiny(dir, "Q8_0");
  ASSERT_TRUE(g.ok());
  uint64_t replicated = 0, split = 0, kv = 0;
  for (const GgufTensorInfo& t : g->tensors()) {
    const bool whole = t.name == "token_embd.weight" || t.name.find("norm") != std::string::npos;
    (whole ? replicated : split) += t.n_bytes;
    if (t.name.find("attn_k.") != std::string::npos || t.name.find("attn_v.") != std::string::npos) kv += t.n_bytes;
  }
  for (int ranks : {1, 2, 4}) {
    uint64_t sum = 0;
    for (int r = 0; r < ranks; ++r) {
      auto m = LlamaModel::Load(*g, LoadOptions{.rank = r, .ranks = ranks, .weights = LoadOptions::Weights::kCopy});
      ASSERT_TRUE(m.ok()) << m.status().message();
      // Padding between pieces is at most 63 bytes each; with 4 ranks over 2 KV heads, each KV head
      // is held by two ranks.
      const uint64_t kv_extra = ranks > 2 ? kv / 2 - kv / ranks : 0;
      EXPECT_LE(m->owned_bytes(), replicated + split / ranks + kv_extra + 64 * 64) << "rank " << r << " of " << ranks;
      sum += m->owned_bytes();
    }
    EXPECT_GE(sum, static_cast<uint64_t>(ranks) * replicated + split) << ranks << " ranks hold every split byte once";
  }
}

TEST(TensorParallel, RankZeroStreamsTheOthersTheirShards) {
  testing::TempDir dir;
  auto g = testing::SynthTiny(dir, "Q4_0");
  ASSERT_TRUE(g.ok());
  // The other ranks parse the header alone, as `--tp-send-weights` does.
  const std::vector<uint8_t> header(g->file().data(), g->file().data() + g->data_offset());
  constexpr int kRanks = 3;
  std::vector<std::vector<float>> streamed(kRanks), read(kRanks);
  OnRanks(kRanks, [&](int r, Comm* comm) {
    auto h = GgufFile::ParseHeader(header, g->file_size(), "header");
    ASSERT_TRUE(h.ok()) << h.status().message();
    EXPECT_EQ(h->tensors()[0].data, nullptr);
    auto m = LlamaModel::Load(r == 0 ? *g : *h, LoadOptions{.rank = r, .ranks = kRanks, .stream = comm});
    ASSERT_TRUE(m.ok()) << m.status().message();
    streamed[r] = RunRank(*m, comm);
    auto direct = LlamaModel::Load(*g, LoadOptions{.rank = r, .ranks = kRanks, .weights = LoadOptions::Weights::kCopy});
    ASSERT_TRUE(direct.ok());
    read[r] = RunRank(*direct, comm);
    EXPECT_EQ(m->fingerprint(), direct->fingerprint());
  });
  for (int r = 0; r < kRanks; ++r) EXPECT_EQ(streamed[r], read[r]) << "rank " << r;
  // A header alone cannot be read from: a rank without the file and without a stream says so.
  auto h = GgufFile::ParseHeader(header, g->file_size(), "header");
  ASSERT_TRUE(h.ok());
  auto m = LlamaModel::Load(*h, LoadOptions{.rank = 1, .ranks = 2, .weights = LoadOptions::Weights::kCopy});
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("has no data in this process"), std::string::npos) << m.status().message();
}

// Ranks holding copies of their shards whose rows are 4 KiB (`synth --shape tiny-wide` F32: padded
// by a line in the image, model/shard.h), read from the file or streamed from rank 0 in windows,
// give the same bits as each other and the one-rank logits to rounding.
TEST(TensorParallel, RanksHoldPaddedShardsReadOrStreamed) {
  testing::TempDir dir;
  auto g = testing::SynthShape(dir, "tiny-wide");
  ASSERT_TRUE(g.ok());
  auto one = LlamaModel::Load(*g);
  ASSERT_TRUE(one.ok());
  const std::vector<float> want = RunRank(*one, nullptr);
  constexpr int kRanks = 2;
  std::vector<std::vector<float>> read(kRanks), streamed(kRanks);
  OnRanks(kRanks, [&](int r, Comm* comm) {
    auto a = LlamaModel::Load(*g, LoadOptions{.rank = r, .ranks = kRanks, .weights = LoadOptions::Weights::kCopy});
    auto b = LlamaModel::Load(*g, LoadOptions{.rank = r, .ranks = kRanks, .stream = comm});
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->layers[0].wq.row_stride, 4160u);  // whole rows of the rank's heads
    read[r] = RunRank(*a, comm);
    streamed[r] = RunRank(*b, comm);
  });
  for (int r = 0; r < kRanks; ++r) {
    EXPECT_EQ(streamed[r], read[r]) << "rank " << r;
    ASSERT_EQ(read[r].size(), want.size());
    EXPECT_LT(RelativeL2(read[r], want), 1e-5) << "rank " << r;
  }
}

// Ranks holding their Q4_K shards in memory interleave them (numeric/interleave.h; the row-parallel
// shards' column ranges too) where the active table runs the type, read or streamed, and compute the
// same bits as ranks viewing the file's rows.
TEST(TensorParallel, RanksInterleaveTheirQ4KShards) {
  testing::TempDir dir;
  auto g = testing::SynthShape(dir, "tiny-wide", "Q4_K");
  ASSERT_TRUE(g.ok()) << g.status().message();
  const GgmlType held = InterleavedFor(ActiveDotKernels(), GgmlType::kQ4_K).value_or(GgmlType::kQ4_K);
  constexpr int kRanks = 2;
  std::vector<std::vector<float>> read(kRanks), streamed(kRanks), viewed(kRanks);
  OnRanks(kRanks, [&](int r, Comm* comm) {
    auto a = LlamaModel::Load(*g, LoadOptions{.rank = r, .ranks = kRanks, .weights = LoadOptions::Weights::kCopy});
    auto b = LlamaModel::Load(*g, LoadOptions{.rank = r, .ranks = kRanks, .stream = comm});
    auto c = LlamaModel::Load(*g, LoadOptions{.rank = r, .ranks = kRanks, .weights = LoadOptions::Weights::kView});
    ASSERT_TRUE(a.ok() && b.ok() && c.ok());
    EXPECT_EQ(a->layers[0].wq.type, held);
    EXPECT_EQ(b->layers[0].down.type, held);  // a column range of every row
    EXPECT_EQ(c->layers[0].down.type, GgmlType::kQ4_K);
    read[r] = RunRank(*a, comm);
    streamed[r] = RunRank(*b, comm);
    viewed[r] = RunRank(*c, comm);
  });
  for (int r = 0; r < kRanks; ++r) {
    EXPECT_EQ(read[r], viewed[r]) << "rank " << r;
    EXPECT_EQ(streamed[r], viewed[r]) << "rank " << r;
  }
}

TEST(TensorParallel, RanksNoticeTheyLoadedDifferentModels) {
  testing::TempDir dir;
  auto a = testing::SynthTiny(dir, "Q8_0");
  auto b = testing::SynthTiny(dir, "Q4_0");
  ASSERT_TRUE(a.ok() && b.ok());
  std::vector<Status> seen(2);
  OnRanks(2, [&](int r, Comm* comm) {
    auto m = LlamaModel::Load(r == 0 ? *a : *b, r, 2);
    ASSERT_TRUE(m.ok());
    seen[r] = AgreeOnIdentity(comm, m->fingerprint(), m->description(), "the model");
  });
  for (const Status& s : seen) {
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("the ranks disagree on the model"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("tiny-Q4_0.gguf"), std::string::npos) << s.message();
  }
}

TEST(Comm, SplitDimAndThreadCommCollectives) {
  EXPECT_EQ(SplitDim(512, 32, 1, 2)->begin, 256);
  EXPECT_EQ(SplitDim(96, 32, 2, 3)->count, 32);
  EXPECT_FALSE(SplitDim(100, 32, 0, 2).ok());
  // 3 units over 4 ranks: one empty part, last ranks fuller (or first ones with extra_first).
  EXPECT_EQ(SplitUnits(768, 256, 0, 4)->count, 0);
  EXPECT_EQ(SplitUnits(768, 256, 3, 4)->begin, 512);
  EXPECT_EQ(SplitUnits(768, 256, 0, 4, true)->count, 256);
  EXPECT_EQ(SplitUnits(768, 256, 3, 4, true)->count, 0);
  EXPECT_EQ(SplitUnits(5632, 256, 1, 4)->count + SplitUnits(5632, 256, 0, 4)->count, 2816);
  ThreadCommGroup group(3);
  std::vector<std::thread> threads;
  std::vector<std::vector<float>> sums(3), gathered(3), gathered_v(3);
  std::vector<std::vector<uint8_t>> bytes(3), received(3);
  for (int r = 0; r < 3; ++r) {
    threads.emplace_back([&, r] {
      Comm* c = group.rank(r);
      sums[r] = {1.0f * r, 2.0f * r, 3.0f, 4.0f, 5.0f};
      c->AllReduceSum(sums[r].data(), 5);
      const float mine[2] = {static_cast<float>(r), static_cast<float>(10 * r)};
      gathered[r].resize(6);
      c->AllGather(mine, 2, gathered[r].data());
      const int64_t counts[3] = {1, 0, 2};
      gathered_v[r].resize(3);
      c->AllGatherV(mine, counts, gathered_v[r].data());
      const uint8_t b = static_cast<uint8_t>(100 + r);
      bytes[r].resize(3);
      c->AllGatherBytes(&b, 1, bytes[r].data());
      if (r == 0) {
        c->Send("hello", 5, 2);
        c->Send("again", 5, 2);
      }
      if (r == 2) {
        received[r].resize(10);
        c->Recv(received[r].data(), 5, 0);
        c->Recv(received[r].data() + 5, 5, 0);
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(sums[r], (std::vector<float>{3, 6, 9, 12, 15}));
    EXPECT_EQ(gathered[r], (std::vector<float>{0, 0, 1, 10, 2, 20}));
    EXPECT_EQ(gathered_v[r], (std::vector<float>{0, 2, 20}));
    EXPECT_EQ(bytes[r], (std::vector<uint8_t>{100, 101, 102}));
  }
  EXPECT_EQ(std::string(received[2].begin(), received[2].end()), "helloagain");
}

TEST(Comm, AgreeOnStatusStopsEveryRankWithTheFirstError) {
  std::vector<Status> seen(3);
  OnRanks(3, [&](int r, Comm* comm) {
    seen[r] = AgreeOnStatus(comm, r == 1 ? Errorf("model.gguf: cannot open: No such file or directory") : OkStatus());
  });
  EXPECT_EQ(seen[1].message(), "model.gguf: cannot open: No such file or directory");
  for (int r : {0, 2}) {
    ASSERT_FALSE(seen[r].ok());
    EXPECT_EQ(seen[r].message(), "stopping because rank 1 of 3 failed: model.gguf: cannot open: No such file or directory");
  }
  OnRanks(2, [&](int, Comm* comm) { EXPECT_TRUE(AgreeOnStatus(comm, OkStatus()).ok()); });
}

TEST(Comm, ReducedPrecisionAllReduceIsCloseAndIdenticalOnEveryRank) {
  constexpr int64_t kN = 2048 + 7;  // a partial last block
  for (ReducePrecision p : {ReducePrecision::kBF16, ReducePrecision::kQ8}) {
    std::vector<std::vector<float>> out(3);
    std::vector<float> exact(kN, 0.0f);
    auto value = [](int r, int64_t i) { return std::sin(0.37f * static_cast<float>(i) + static_cast<float>(r)) * (1.0f + r); };
    for (int r = 0; r < 3; ++r) {
      for (int64_t i = 0; i < kN; ++i) exact[i] += value(r, i);
    }
    OnRanks(3, [&](int r, Comm* inner) {
      ReducedPrecisionComm c(inner, p);
      out[r].resize(kN);
      for (int64_t i = 0; i < kN; ++i) out[r][i] = value(r, i);
      c.AllReduceSum(out[r].data(), kN);
    });
    // Each rank's vector is rounded once: bf16 to 2^-8 of the value, q8 to half a step of 1/127 of
    // its block's largest value (3 ranks, values up to 3).
    const double bound = p == ReducePrecision::kBF16 ? 3 * 3.0 / 256 : 3 * 3.0 / 254 + 1e-3;
    double worst = 0;
    for (int64_t i = 0; i < kN; ++i) worst = std::max(worst, std::fabs(static_cast<double>(out[0][i]) - exact[i]));
    EXPECT_LE(worst, bound) << ReducePrecisionName(p);
    EXPECT_GT(worst, 0) << "the vectors did travel in reduced precision";
    EXPECT_EQ(out[1], out[0]);
    EXPECT_EQ(out[2], out[0]);
  }
  EXPECT_EQ(EncodedBytes(ReducePrecision::kQ8, 64), 68u);
  EXPECT_EQ(EncodedBytes(ReducePrecision::kBF16, 64), 128u);
}

}  // namespace
}  // namespace lowbit

// The tensor-parallel cost model: message rounds per collective, the per-token sum, the model's
// bytes per rank from the shard plans, and the unit parsing of `lowbit plan --net`.
#include <gtest/gtest.h>

#include "lowbit/eval/bench.h"
#include "lowbit/eval/tp_cost.h"
#include "lowbit/model/llama.h"
#include "model/synth_tiny.h"

namespace lowbit {
namespace {

TEST(TpCost, CollectivesCountTheirRounds) {
  const TpLink link{.latency_s = 50e-6, .bandwidth_Bps = 1.25e9};  // 50 us, 10 Gbit/s
  const double sw = 2e-6, round = sw + 50e-6, v = 8192;             // 2048 floats
  EXPECT_EQ(AllReduceSeconds(1, v, link, sw), 0);
  EXPECT_DOUBLE_EQ(AllReduceSeconds(2, v, link, sw), round + v / 1.25e9);          // one exchange
  EXPECT_DOUBLE_EQ(AllReduceSeconds(4, v, link, sw), 2 * (round + v / 1.25e9));    // recursive doubling
  EXPECT_DOUBLE_EQ(AllReduceSeconds(3, v, link, sw), 3 * (round + v / 1.25e9));    // 2 + the extra rank's 2 hops
  // A large vector goes around a ring: 2 (N - 1) rounds of 1/N of it.
  const double big = 64e6;
  EXPECT_DOUBLE_EQ(AllReduceSeconds(4, big, link, sw), 6 * (round + big / 4 / 1.25e9));
  EXPECT_DOUBLE_EQ(BroadcastSeconds(4, 4, link, sw), 2 * (round + 4 / 1.25e9));
  EXPECT_DOUBLE_EQ(AllGatherSeconds(2, 128000, link, sw), round + 64000 / 1.25e9);
}

TEST(TpCost, AMeasuredStackCostAddsToEveryByteOfEveryRound) {
  const TpLink wire{.latency_s = 50e-6, .bandwidth_Bps = 1.25e9};
  TpLink measured = wire;
  measured.stack_s_per_byte = 5e-9;  // 5 us/KB
  const double sw = 2e-6, v = 8192;
  EXPECT_DOUBLE_EQ(AllReduceSeconds(2, v, measured, sw) - AllReduceSeconds(2, v, wire, sw), v * 5e-9);
  EXPECT_DOUBLE_EQ(AllReduceSeconds(4, v, measured, sw) - AllReduceSeconds(4, v, wire, sw), 2 * v * 5e-9);
  EXPECT_DOUBLE_EQ(AllGatherSeconds(4, 128000, measured, sw) - AllGatherSeconds(4, 128000, wire, sw), 96000 * 5e-9);
  // Shared memory (no bandwidth limit) still pays the stack's copies.
  EXPECT_DOUBLE_EQ(BroadcastSeconds(2, 4000, TpLink{.stack_s_per_byte = 1e-9}, 0), 4000 * 1e-9);
}

TEST(TpCost, ATokenIsTheSlowestRanksReadingPlusTheCollectives) {
  TpCostInputs in;
  in.ranks = 2;
  in.rank_bytes = {300e6, 310e6};
  in.read_Bps = 20e9;
  in.efficiency = 0.8;
  in.n_layer = 22;
  in.n_embd = 2048;
  in.n_vocab = 32000;
  in.link = {200e-6, 125e6};  // 200 us, 1 Gbit/s
  in.software_alpha_s = 2e-6;
  const TpCostPrediction p = PredictTpDecode(in);
  EXPECT_DOUBLE_EQ(p.compute_s, 310e6 / 16e9);
  EXPECT_DOUBLE_EQ(p.allreduce_s, 44 * AllReduceSeconds(2, 8192, in.link, 2e-6));
  EXPECT_DOUBLE_EQ(p.token_s, p.compute_s + p.allreduce_s + p.gather_s + p.broadcast_s);
  EXPECT_DOUBLE_EQ(p.tok_per_s, 1 / p.token_s);
  EXPECT_GT(p.allreduce_s, 44 * 200e-6);  // latency bound: 44 x (200 us + 65 us of bytes)
}

TEST(TpCost, BytesPerRankComeFromTheShardPlans) {
  testing::TempDir dir;
  auto g = testing::SynthTiny(dir, "Q8_0");
  ASSERT_TRUE(g.ok());
  auto whole = LlamaModel::Load(*g);
  ASSERT_TRUE(whole.ok());
  auto one = TpCostInputsFor(*g, 1);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->rank_bytes, std::vector<double>{WeightBytesPerToken(*whole)});
  EXPECT_EQ(one->n_layer, 2);
  EXPECT_EQ(one->n_embd, 256);
  auto two = TpCostInputsFor(*g, 2);
  ASSERT_TRUE(two.ok());
  ASSERT_EQ(two->rank_bytes.size(), 2u);
  // Each rank reads half of the split weights plus the norms and an embedding row.
  EXPECT_LT(two->rank_bytes[0], 0.6 * one->rank_bytes[0]);
  EXPECT_GT(two->rank_bytes[0] + two->rank_bytes[1], one->rank_bytes[0]);
}

TEST(TpCost, ParsesLatencyAndBandwidth) {
  EXPECT_DOUBLE_EQ(*ParseLatency("50us"), 50e-6);
  EXPECT_DOUBLE_EQ(*ParseLatency("0.2ms"), 200e-6);
  EXPECT_DOUBLE_EQ(*ParseBandwidth("10gbit"), 1.25e9);
  EXPECT_DOUBLE_EQ(*ParseBandwidth("100mbit"), 12.5e6);
  EXPECT_DOUBLE_EQ(*ParseBandwidth("1.5GB/s"), 1.5e9);
  EXPECT_FALSE(ParseLatency("fast").ok());
  EXPECT_FALSE(ParseLatency("50").ok());
  EXPECT_NE(ParseBandwidth("10gbits").status().message().find("unknown unit 'gbits'"), std::string::npos);
  EXPECT_FALSE(ParseBandwidth("-1gbit").ok());
}

}  // namespace
}  // namespace lowbit

// Held-out selection (train/holdout.h): the held-out tokens are the tail of the training stream and
// never reachable by the training windows; the snapshot keeps the lowest loss (the earlier on a tie,
// never a NaN) and restores exactly those values.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "lowbit/train/data.h"
#include "lowbit/train/holdout.h"

namespace lowbit::train {
namespace {

TEST(Holdout, TheTailOfTheStreamWithBos) {
  std::vector<int32_t> stream(100);
  std::iota(stream.begin(), stream.end(), 0);
  auto held = SplitHoldout(&stream, 3, 10, /*bos=*/7, /*keep=*/20);
  ASSERT_TRUE(held.ok()) << held.status().message();
  ASSERT_EQ(stream.size(), 70u);
  EXPECT_EQ(stream.back(), 69);
  ASSERT_EQ(held->size(), 30u);
  for (int64_t s = 0; s < 3; ++s) {
    EXPECT_EQ((*held)[s * 10], 7);  // BOS first
    for (int64_t j = 1; j < 10; ++j) EXPECT_EQ((*held)[s * 10 + j], 70 + s * 10 + j);
  }
  // The training windows (T + 1 tokens) are drawn from what is left: none reaches a held-out token.
  auto data = TokenDataset::FromStream(stream, 7, 10);
  ASSERT_TRUE(data.ok());
  std::vector<int32_t> in(10), tg(10);
  for (int64_t step = 0; step < 200; ++step) {
    data->Get(1, step, 0, in.data(), tg.data());
    EXPECT_LT(tg.back(), 70);
  }
}

TEST(Holdout, NoBosAndNothingHeldOut) {
  std::vector<int32_t> stream(50, 3);
  auto held = SplitHoldout(&stream, 2, 5, -1, 1);
  ASSERT_TRUE(held.ok());
  EXPECT_EQ((*held)[0], 3);
  EXPECT_EQ(stream.size(), 40u);
  auto none = SplitHoldout(&stream, 0, 5, 1, 1);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(stream.size(), 40u);
}

TEST(Holdout, TooLittleTextSaysHowMuch) {
  std::vector<int32_t> stream(100, 1);
  auto held = SplitHoldout(&stream, 8, 10, 1, 30);
  ASSERT_FALSE(held.ok());
  EXPECT_NE(held.status().message().find("100 tokens"), std::string::npos) << held.status().message();
  EXPECT_NE(held.status().message().find("--holdout"), std::string::npos) << held.status().message();
  EXPECT_EQ(stream.size(), 100u);  // untouched
}

TEST(Holdout, SnapshotKeepsTheLowestAndRestoresIt) {
  Param a("a", 1, 3, true), b("b", 2, 2, false);
  std::vector<Param*> ps = {&a, &b};
  auto set = [&](float v) {
    std::fill(a.value.begin(), a.value.end(), v);
    std::fill(b.value.begin(), b.value.end(), -v);
  };
  BestSnapshot best;
  EXPECT_TRUE(best.empty());
  set(0);
  EXPECT_TRUE(best.Offer(0, 0.5, ps));
  set(1);
  EXPECT_TRUE(best.Offer(10, 0.3, ps));
  set(2);
  EXPECT_FALSE(best.Offer(20, 0.3, ps));  // a tie keeps the earlier state
  set(3);
  EXPECT_FALSE(best.Offer(30, std::nan(""), ps));
  set(4);
  EXPECT_FALSE(best.Offer(40, 0.9, ps));
  EXPECT_EQ(best.step(), 10);
  EXPECT_DOUBLE_EQ(best.loss(), 0.3);
  best.Restore(ps);
  for (float v : a.value) EXPECT_EQ(v, 1.0f);
  for (float v : b.value) EXPECT_EQ(v, -1.0f);
}

}  // namespace
}  // namespace lowbit::train

// The optimizer and the training loop: AdamW against its formula, the warmup/cosine schedule,
// clipping, accumulation over micro-batches; a resumed run ends bit-identical to an uninterrupted
// one; a NaN stops the run naming the step and the tensor and leaves the last checkpoint intact.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "lowbit/train/checkpoint.h"
#include "lowbit/train/data.h"
#include "lowbit/train/trainer.h"
#include "test_data.h"

namespace lowbit::train {
namespace {

TEST(Optimizer, AdamWMatchesItsFormula) {
  Param p("w", 1, 3, true);
  p.value = {1.0f, -2.0f, 0.5f};
  p.grad = {0.1f, -0.3f, 0.0f};
  Param n("norm", 1, 1, false);
  n.value = {1.0f};
  n.grad = {0.2f};
  AdamWOptions o{.beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .weight_decay = 0.1f};
  AdamWStep({&p, &n}, o, 0.01f, 1, nullptr);
  // Step 1: m_hat = g, v_hat = g^2, so the update is lr * g / (|g| + eps) plus the decay.
  const double want0 = 1.0 - 0.01 * 0.1 * 1.0 - 0.01 * 0.1 / (0.1 + 1e-8);
  EXPECT_NEAR(p.value[0], want0, 1e-6);
  EXPECT_NEAR(p.value[1], -2.0 + 0.01 * 0.1 * 2.0 + 0.01, 1e-6);
  EXPECT_NEAR(p.value[2], 0.5 - 0.01 * 0.1 * 0.5, 1e-6);  // zero gradient: decay only
  EXPECT_NEAR(n.value[0], 1.0 - 0.01, 1e-6);              // no decay on norms
}

TEST(Optimizer, ScheduleWarmsUpThenDecays) {
  EXPECT_FLOAT_EQ(ScheduledLr(0, 100, 10, 1.0f, 0.1f), 0.1f);
  EXPECT_FLOAT_EQ(ScheduledLr(9, 100, 10, 1.0f, 0.1f), 1.0f);
  EXPECT_FLOAT_EQ(ScheduledLr(10, 100, 10, 1.0f, 0.1f), 1.0f);
  EXPECT_NEAR(ScheduledLr(99, 100, 10, 1.0f, 0.1f), 0.1f, 1e-6);
  float prev = 2.0f;
  for (int s = 10; s < 100; ++s) {
    const float lr = ScheduledLr(s, 100, 10, 1.0f, 0.1f);
    EXPECT_LE(lr, prev);
    prev = lr;
  }
}

// A quadratic loss 0.5 * sum (w - target)^2 over "sequences": each sequence i of step s pulls
// toward a target that depends on (s, i), so the data order matters.
struct Quadratic {
  Param w{"blk.0.attn_q.weight", 2, 3, true};
  Param b{"blk.0.attn_norm.weight", 1, 3, false};
  int nan_at_step = -1;
  TrainHooks Hooks() {
    TrainHooks h;
    h.micro_batch = [this](int64_t step, int64_t first, int64_t n, float scale) -> Expected<std::pair<double, int64_t>> {
      double loss = 0;
      for (int64_t i = first; i < first + n; ++i) {
        const float t = static_cast<float>(Mix64(static_cast<uint64_t>(step * 31 + i)) % 1000) / 500.0f - 1.0f;
        for (Param* p : {&w, &b}) {
          for (size_t k = 0; k < p->value.size(); ++k) {
            const float d = p->value[k] - t * static_cast<float>(k + 1);
            loss += 0.5 * d * d;
            p->grad[k] += scale * d;
          }
        }
      }
      if (step == nan_at_step) w.grad[4] = std::nanf("");
      return std::make_pair(loss, n);
    };
    return h;
  }
};

TrainConfig Config(const std::string& ckpt) {
  TrainConfig c;
  c.steps = 6;
  c.batch = 4;
  c.micro_batch = 2;
  c.ctx = 1;
  c.lr = 0.05f;
  c.warmup = 2;
  c.clip = 0.5f;
  c.checkpoint = ckpt;
  c.checkpoint_every = 2;
  c.identity = {.kind = "test", .config = "{}"};
  return c;
}

TEST(Trainer, ResumedRunEqualsAnUninterruptedOne) {
  testing::TempDir dir;
  Quadratic full;
  auto r = Train(Config(dir.Path("full.ckpt")), {&full.w, &full.b}, full.Hooks(), nullptr, {});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, 6);

  Quadratic part;
  TrainConfig c = Config(dir.Path("part.ckpt"));
  part.nan_at_step = 3;  // the 4th step fails; the checkpoint of step 2 is the last one written
  auto fail = Train(c, {&part.w, &part.b}, part.Hooks(), nullptr, {});
  ASSERT_FALSE(fail.ok());
  EXPECT_NE(fail.status().message().find("step 4"), std::string::npos) << fail.status().message();
  EXPECT_NE(fail.status().message().find("blk.0.attn_q.weight"), std::string::npos) << fail.status().message();
  EXPECT_NE(fail.status().message().find("(step 2) is kept"), std::string::npos) << fail.status().message();
  // The checkpoint holds step 2; resuming from it reproduces the uninterrupted run bit for bit.
  Quadratic resumed;
  c.resume = true;
  std::vector<StepStats> seen;
  auto ok = Train(c, {&resumed.w, &resumed.b}, resumed.Hooks(), nullptr, [&](const StepStats& s) { seen.push_back(s); });
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(*ok, 4);
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.front().step, 3);
  EXPECT_EQ(resumed.w.value, full.w.value);
  EXPECT_EQ(resumed.b.value, full.b.value);
  EXPECT_EQ(resumed.w.m, full.w.m);
  EXPECT_EQ(resumed.w.v, full.w.v);
}

TEST(Trainer, CheckpointsRefuseAnotherRun) {
  testing::TempDir dir;
  Quadratic q;
  ASSERT_TRUE(Train(Config(dir.Path("c.ckpt")), {&q.w, &q.b}, q.Hooks(), nullptr, {}).ok());
  Param other("blk.0.attn_q.weight", 3, 2, true);  // another shape
  CheckpointInfo want{.kind = "test", .config = "{}"};
  auto r = LoadCheckpoint(dir.Path("c.ckpt"), {&other, &q.b}, want);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("blk.0.attn_q.weight"), std::string::npos) << r.status().message();
  want.config = R"({"x":1})";
  r = LoadCheckpoint(dir.Path("c.ckpt"), {&q.w, &q.b}, want);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("other settings"), std::string::npos) << r.status().message();
  want = {.kind = "qat", .config = "{}"};
  EXPECT_FALSE(LoadCheckpoint(dir.Path("c.ckpt"), {&q.w, &q.b}, want).ok());
}

TEST(Trainer, LossOfANaNStopsAtOnce) {
  Quadratic q;
  TrainHooks h = q.Hooks();
  auto inner = h.micro_batch;
  h.micro_batch = [inner](int64_t step, int64_t first, int64_t n, float scale) -> Expected<std::pair<double, int64_t>> {
    auto r = inner(step, first, n, scale);
    if (step == 1) r->first = std::nan("");
    return r;
  };
  TrainConfig c = Config("");
  auto r = Train(c, {&q.w, &q.b}, h, nullptr, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("step 2: the loss is nan"), std::string::npos) << r.status().message();
}

TEST(Data, WindowsAreDeterministicAndStartWithBos) {
  std::vector<int32_t> stream(100);
  for (int i = 0; i < 100; ++i) stream[i] = i + 10;
  auto d = TokenDataset::FromStream(stream, 1, 8);
  ASSERT_TRUE(d.ok());
  int32_t in[8], tg[8], in2[8], tg2[8];
  d->Get(7, 3, 1, in, tg);
  d->Get(7, 3, 1, in2, tg2);
  EXPECT_EQ(std::vector<int32_t>(in, in + 8), std::vector<int32_t>(in2, in2 + 8));
  EXPECT_EQ(in[0], 1);
  for (int i = 1; i < 8; ++i) EXPECT_EQ(in[i], tg[i - 1]);
  EXPECT_EQ(tg[7], tg[6] + 1);
  EXPECT_FALSE(TokenDataset::FromStream({1, 2, 3}, 1, 8).ok());
}

}  // namespace
}  // namespace lowbit::train

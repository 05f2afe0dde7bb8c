// The prompt at a model's own shapes: the cost model sums the products and attention a prompt runs,
// each at the time measured for its shape (a table injected here, so the sum is exact), and the
// probe times every shape it is given and keeps the timings for the next run. No speed is asserted.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>

#include "lowbit/advise/advisor.h"
#include "lowbit/advise/prompt_probe.h"
#include "lowbit/advise/step_probe.h"
#include "lowbit/kernels/matvec.h"
#include "test_data.h"
#include "advise/test_speed.h"

namespace lowbit {
namespace {

// The advisor tests' machine, with the decode step's fixed costs set.
MachineSpeed FlatSpeed() {
  MachineSpeed m = testing::TestSpeed();
  m.token_us = 30;
  m.layer_us = 5;
  return m;
}

// A made-up time for each shape, different for every field.
double FakeSeconds(const ProductShape& s) {
  return 1e-4 * (1 + static_cast<double>(s.type) + 1e-3 * static_cast<double>(s.rows) + 1e-4 * static_cast<double>(s.cols) +
                 1e-2 * static_cast<double>(s.batch));
}
double FakeSeconds(const AttentionShape& a) { return 1e-3 * (1 + 1e-3 * static_cast<double>(a.start + a.tokens)); }

TEST(AdvisePromptShapes, PromptIsTheSumOfItsProductsAtTheirMeasuredTimes) {
  auto src = ModelSource::Open("tinyllama-1.1b");
  ASSERT_TRUE(src.ok()) << src.status().message();
  auto p = src->As("Q4_K_M");  // a mix: Q4_K and Q6_K at two widths, so several shapes
  ASSERT_TRUE(p.ok()) << p.status().message();
  const ModelWork w = WorkOf(p->model, false, 4);
  const int64_t layers = p->model.config().n_layer;
  // Every layer's 7 products and the classifier (for the last token only).
  double counted = 0;
  std::optional<PromptProduct> head;
  for (const PromptProduct& q : w.prompt_products) {
    if (q.last_token) head = q;
    else counted += q.count;
  }
  EXPECT_EQ(counted, 7.0 * static_cast<double>(layers));
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->rows, p->model.config().n_vocab);

  for (int64_t n : {int64_t{512}, int64_t{1000}}) {
    SCOPED_TRACE(n);
    const PromptShapes shapes = PromptShapesOf(w, n);
    EXPECT_GE(shapes.products.size(), 4u);
    ASSERT_EQ(shapes.attention.size(), n > kPromptStep ? 2u : 1u);
    MachineSpeed m = FlatSpeed();
    for (const ProductShape& s : shapes.products) m.product_s[s] = FakeSeconds(s);
    for (const AttentionShape& a : shapes.attention) m.attention_s[a] = FakeSeconds(a);
    // By hand: each step runs every product at its batch, the classifier on one token (its bytes at
    // the stream rate, handed out), each layer's attention, 2 hand-offs a layer (attention, SwiGLU)
    // and the step's fixed costs.
    double expected = 0;
    for (const auto& [start, tokens] : {std::pair<int64_t, int64_t>{0, std::min<int64_t>(n, kPromptStep)}, {kPromptStep, n - kPromptStep}}) {
      if (tokens <= 0) continue;
      for (const PromptProduct& q : w.prompt_products) {
        if (q.last_token) {
          const double bytes = static_cast<double>(*RowBytes(q.type, static_cast<uint64_t>(q.cols)) * static_cast<uint64_t>(q.rows));
          expected += bytes / 40e9 + 2e-6;
        } else {
          expected += q.count * m.product_s.at(ProductShape{q.type, q.rows, q.cols, tokens});
        }
      }
      expected += static_cast<double>(layers) * FakeSeconds(shapes.attention.at(start == 0 ? 0 : 1));
      expected += 2.0 * static_cast<double>(layers) * 2e-6 + (30 + 5 * static_cast<double>(layers)) * 1e-6;
    }
    auto got = PromptSeconds(w, m, n);
    ASSERT_TRUE(got.ok()) << got.status().message();
    EXPECT_NEAR(*got, expected, 1e-12 * expected);
    // One shape slower by 1 ms: the prompt slower by as many ms as products of that shape it runs.
    const ProductShape first = shapes.products.front();
    double runs = 0;
    for (const PromptProduct& q : w.prompt_products) {
      if (!q.last_token && q.type == first.type && q.rows == first.rows && q.cols == first.cols) runs += q.count;
    }
    m.product_s[first] += 1e-3;
    EXPECT_NEAR(*PromptSeconds(w, m, n), expected + runs * 1e-3, 1e-12 * expected);
    // Without measurements: the GEMM rates, a different figure.
    EXPECT_GT(std::fabs(*PromptSeconds(w, FlatSpeed(), n) - expected), 0.01 * expected);
  }
}

// Decode at the model's own groups of products: WorkOf lists a step's hand-offs as LlamaSession
// makes them (Q/K/V together, O, gate/up together, down; the classifier), and with every group
// measured a step costs their sum (each timing holds its hand-off) in place of the weight bytes at
// the stream rates; one group missing, the stream rates again. A model no larger than the cache
// keeps the cached rates.
TEST(AdvisePromptShapes, DecodeIsTheSumOfItsGroupsAtTheirMeasuredTimes) {
  auto src = ModelSource::Open("tinyllama-1.1b");
  ASSERT_TRUE(src.ok()) << src.status().message();
  auto p = src->As("Q4_K_M");
  ASSERT_TRUE(p.ok()) << p.status().message();
  const ModelWork w = WorkOf(p->model, false, 4);
  const int64_t layers = p->model.config().n_layer;
  double steps = 0;
  for (const ModelWork::DecodeGroup& g : w.decode_groups) {
    steps += g.count;
    for (const ProductShape& s : g.products) EXPECT_EQ(s.batch, 1);
  }
  EXPECT_EQ(steps, 4.0 * static_cast<double>(layers) + 1);  // Q/K/V, O, gate/up, down a layer; the classifier
  MachineSpeed m = FlatSpeed();
  const DecodeGroups groups = DecodeGroupsOf(w, m);
  EXPECT_TRUE(groups.streamed);
  ASSERT_GE(groups.groups.size(), 4u);
  auto plain = DecodeSeconds(w, m, 100);
  ASSERT_TRUE(plain.ok()) << plain.status().message();
  // The step without its products (attention, fixed costs): every group timed at 0.
  MachineSpeed timed = m;
  for (const auto& g : groups.groups) timed.group_s[g] = 0;
  auto rest = DecodeSeconds(w, timed, 100);
  ASSERT_TRUE(rest.ok());
  EXPECT_LT(*rest, 0.2 * *plain);
  double expected = *rest;
  for (const ModelWork::DecodeGroup& g : w.decode_groups) {
    double t = 0;
    for (const ProductShape& s : g.products) t += FakeSeconds(s);
    timed.group_s[g.products] = t;
    expected += g.count * t;
  }
  EXPECT_NEAR(*DecodeSeconds(w, timed, 100), expected, 1e-12 * expected);
  timed.group_s.erase(groups.groups.back());
  EXPECT_NEAR(*DecodeSeconds(w, timed, 100), *plain, 1e-12 * *plain);
  // A 4-bit stories15M (8.5 MB) is read from a 32 MiB cache: it keeps the cached rates.
  auto small = ModelSource::Open("stories15m");
  ASSERT_TRUE(small.ok()) << small.status().message();
  auto q = small->As("Q4_0");
  ASSERT_TRUE(q.ok()) << q.status().message();
  const DecodeGroups in_cache = DecodeGroupsOf(WorkOf(q->model, false, 4), m);
  EXPECT_FALSE(in_cache.streamed);
  EXPECT_TRUE(in_cache.groups.empty());
}

TEST(AdvisePromptShapes, ProbeTimesEveryShapeAndKeepsItsTimings) {
  testing::TempDir dir;
  const char* old = std::getenv("XDG_CACHE_HOME");
  const std::string saved = old != nullptr ? old : "";
  ::setenv("XDG_CACHE_HOME", dir.path().c_str(), 1);
  const PromptShapes shapes{
      {ProductShape{GgmlType::kQ8_0, 64, 256, 16},      // timed at its rows
       ProductShape{GgmlType::kQ4_K, 2048, 256, 16}},   // extended from 16 and ProbeRows rows
      {AttentionShape{.kv_f16 = true, .kv_heads = 2, .group = 2, .head_dim = 32, .start = 0, .tokens = 16}}};
  MachineSpeed m = FlatSpeed();
  PromptProbe probe(2, ActiveIsa(), /*use_cache=*/false, /*show_progress=*/false);
  ASSERT_TRUE(probe.Time(shapes, &m).ok());
  ASSERT_EQ(m.product_s.size(), 2u);
  ASSERT_EQ(m.attention_s.size(), 1u);
  for (const auto& [s, t] : m.product_s) EXPECT_TRUE(t > 0 && std::isfinite(t)) << t;
  for (const auto& [a, t] : m.attention_s) EXPECT_TRUE(t > 0 && std::isfinite(t)) << t;
  // A decode group (a Q/K/V-like pair of products), streamed.
  const std::vector<ProductShape> qkv{ProductShape{GgmlType::kQ4_K, 64, 256, 1}, ProductShape{GgmlType::kQ8_0, 32, 256, 1}};
  MachineSpeed streamed = FlatSpeed();
  ASSERT_TRUE(probe.TimeDecode(DecodeGroups{{qkv}, true}, &streamed).ok());
  ASSERT_EQ(streamed.group_s.size(), 1u);
  EXPECT_TRUE(streamed.group_s.at(qkv) > 0 && std::isfinite(streamed.group_s.at(qkv)));
  // A second probe reads the same timings from this boot's cache, and measures nothing again.
  MachineSpeed again = FlatSpeed();
  PromptProbe cached(2, ActiveIsa(), /*use_cache=*/true, /*show_progress=*/false);
  ASSERT_TRUE(cached.Time(shapes, &again).ok());
  EXPECT_EQ(again.product_s, m.product_s);
  EXPECT_EQ(again.attention_s, m.attention_s);
  MachineSpeed again_streamed = FlatSpeed();
  ASSERT_TRUE(cached.TimeDecode(DecodeGroups{{qkv}, true}, &again_streamed).ok());
  EXPECT_EQ(again_streamed.group_s, streamed.group_s);
  if (old != nullptr) ::setenv("XDG_CACHE_HOME", saved.c_str(), 1);
  else ::unsetenv("XDG_CACHE_HOME");
}

}  // namespace
}  // namespace lowbit

namespace lowbit {
namespace {

// A model in cache is timed whole (advise/step_probe.h): a copy made from a plan's header alone (a
// FromHeader file: its tensor views point at reserved address space, so reading one would fault)
// decodes, for a plain and a mixed quantization; a decode longer than the context is refused. No
// speed is asserted.
TEST(AdviseStepProbe, TimesAModelFromItsHeaderAlone) {
  auto src = ModelSource::Open("stories15m");
  ASSERT_TRUE(src.ok()) << src.status().message();
  for (const char* type : {"Q8_0", "Q4_K_M"}) {
    SCOPED_TRACE(type);
    auto p = src->As(type);
    ASSERT_TRUE(p.ok()) << p.status().message();
    auto step = TimeSteps(*p->file, StepProbeOptions{.threads = 2, .n_ctx = 256, .kv_f16 = true, .tokens = 256});
    ASSERT_TRUE(step.ok()) << step.status().message();
    EXPECT_GT(step->decode_s, 0.0);
    EXPECT_LT(step->decode_s, 1.0);
  }
  auto p = src->As("Q8_0");
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(TimeSteps(*p->file, StepProbeOptions{.n_ctx = 16, .tokens = 32}).ok());  // more tokens than the context
}

}  // namespace
}  // namespace lowbit

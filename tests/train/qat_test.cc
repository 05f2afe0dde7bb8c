// QAT: the fake quantization is the quantizer's bytes and the dequantizer's values; the clipping
// mask's cells match each format's grid; the training forward on a model's own bytes is the
// engine's forward; `qat` writes a file with the types and size `quantize` gives for the same mix
// and lowers its distillation loss.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "lowbit/eval/perplexity.h"
#include "lowbit/formats/gguf_vocab.h"
#include "lowbit/numeric/half.h"
#include "lowbit/pipeline/quantize.h"
#include "lowbit/train/fake_quant.h"
#include "lowbit/train/qat.h"
#include "lowbit/train/weights.h"
#include "../model/synth_tiny.h"
#include "test_data.h"

namespace lowbit::train {
namespace {

std::vector<float> RandomRow(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = nd(rng);
  for (int64_t i = 0; i < n; i += 61) v[i] *= 6.0f;  // outliers, so that some formats clip
  return v;
}

// A QAT run distilled from the model itself, on 2 threads, in micro-batches of up to 2 sequences.
QatOptions SelfDistilled(const std::string& model, int64_t samples, int64_t steps, int64_t batch, int64_t ctx) {
  QatOptions o;
  o.model = model;
  o.self_distill = true;
  o.samples = samples;
  o.threads = 2;
  o.train.steps = steps;
  o.train.batch = batch;
  o.train.micro_batch = std::min<int64_t>(batch, 2);
  o.train.ctx = ctx;
  return o;
}

TEST(FakeQuant, IsTheQuantizersBytesAndTheDequantizersValues) {
  const int64_t rows = 3, cols = 512;
  ThreadPool pool(2);
  for (const FakeQuantFormat* f : AllFakeQuantFormats()) {
    ASSERT_NE(FindFakeQuant(f->type), nullptr) << f->name;
    const std::vector<float> w = RandomRow(rows * cols, 1);
    FakeQuantTensor t(*f, rows, cols);
    t.Refresh(w.data(), nullptr, &pool);
    const uint64_t rb = *RowBytes(f->type, cols);
    std::vector<uint8_t> q(rb);
    std::vector<float> y(cols);
    for (int64_t r = 0; r < rows; ++r) {
      FromFloatFor(f->type)(w.data() + r * cols, q.data(), cols, nullptr);
      ASSERT_EQ(std::memcmp(q.data(), t.bytes().data() + r * rb, rb), 0) << f->name;
      ToFloatFor(f->type)(q.data(), y.data(), cols);
      ASSERT_EQ(std::memcmp(y.data(), t.values().data() + r * cols, cols * 4), 0) << f->name;
    }
  }
  EXPECT_EQ(FindFakeQuant(GgmlType::kIQ2_XXS), nullptr);  // no quantizer: QAT cannot target it
}

// --grid frozen: once frozen, a Refresh keeps every block's grid (the scales and mins the quantizer
// chose) and gives each element the nearest level of it; the quantizer's own codes are that nearest
// level, so re-coding the same weights on the frozen grid writes the quantizer's bytes again.
TEST(FakeQuant, FrozenGridKeepsTheScalesAndRecodesToTheNearestLevel) {
  const int64_t rows = 2, cols = 512;
  int frozen_types = 0;
  for (const FakeQuantFormat* f : AllFakeQuantFormats()) {
    const GgmlGrid* g = GgmlGridFor(f->type);
    const std::vector<float> w = RandomRow(rows * cols, 5);
    FakeQuantTensor t(*f, rows, cols);
    t.Refresh(w.data(), nullptr, nullptr);
    const std::vector<uint8_t> ptq = t.bytes();
    // Q4_0 and Q8_0 round with d before its fp16 rounding: their codes are not always the stored
    // grid's nearest, and they do not freeze (freezing would change step 0).
    const bool freezes = g != nullptr && f->type != GgmlType::kQ4_0 && f->type != GgmlType::kQ8_0;
    ASSERT_EQ(t.FreezeGrid(), freezes) << f->name;
    if (!freezes) continue;
    ++frozen_types;
    EXPECT_TRUE(t.grid_frozen());
    t.Refresh(w.data(), nullptr, nullptr);
    EXPECT_EQ(t.bytes(), ptq) << f->name << ": the quantizer's codes are the nearest levels of its grid";
    // Weights moved by up to a few steps: the grid stays, each code is the nearest level.
    std::vector<float> w2 = w;
    for (size_t i = 0; i < w2.size(); i += 3) w2[i] += 0.4f * static_cast<float>(i % 7) - 1.2f;
    t.Refresh(w2.data(), nullptr, nullptr);
    const int bs = g->block_size;
    const uint64_t bb = TypeInfo(f->type).block_bytes;
    std::vector<float> a0(bs), b0(bs), a1(bs), b1(bs);
    std::vector<uint8_t> codes(bs), codes0(bs);
    int changed = 0;
    for (int64_t blk = 0; blk < rows * cols / bs; ++blk) {
      g->grid(ptq.data() + blk * bb, a0.data(), b0.data());
      g->grid(t.bytes().data() + blk * bb, a1.data(), b1.data());
      ASSERT_EQ(a0, a1) << f->name << " block " << blk;
      ASSERT_EQ(b0, b1) << f->name << " block " << blk;
      g->get_codes(t.bytes().data() + blk * bb, codes.data());
      g->get_codes(ptq.data() + blk * bb, codes0.data());
      for (int j = 0; j < bs; ++j) {
        ASSERT_EQ(codes[j], g->Nearest(w2[blk * bs + j], a1[j], b1[j])) << f->name << " element " << blk * bs + j;
        changed += codes[j] != codes0[j];
      }
    }
    EXPECT_GT(changed, 0) << f->name;  // the codes did follow the weights
  }
  EXPECT_EQ(frozen_types, 11);
}

// On a uniform grid the dequantized values of elements that share a step differ by whole steps:
// a wrong step (scale decoded from the wrong sub-block) breaks this.
TEST(FakeQuant, CellsFollowEachFormatsGrid) {
  const int64_t cols = 512;
  for (const FakeQuantFormat* f : AllFakeQuantFormats()) {
    if (IsFloatType(f->type)) continue;
    const std::vector<float> w = RandomRow(cols, 2);
    FakeQuantTensor t(*f, 1, cols);
    t.Refresh(w.data(), nullptr, nullptr);
    std::vector<float> below(cols), above(cols);
    f->cells(t.bytes().data(), t.values().data(), cols, below.data(), above.data());
    const bool iq4 = f->type == GgmlType::kIQ4_NL || f->type == GgmlType::kIQ4_XS;
    int checked = 0, unit = 0;
    for (int64_t i = 0; i + 1 < cols; ++i) {
      // Pairs inside one 16-element group (the smallest sub-block: affine formats shift each by its own min).
      if (iq4 || (i + 1) % 16 == 0 || !std::isfinite(below[i]) || below[i] != below[i + 1]) continue;
      const double k = (t.values()[i + 1] - t.values()[i]) / (2.0 * below[i]);
      EXPECT_NEAR(k, std::round(k), 1e-3) << f->name << " element " << i;
      ++checked;
      unit += std::fabs(std::round(k)) == 1.0;
    }
    if (!iq4) {
      EXPECT_GT(checked, cols / 2) << f->name;
      EXPECT_GT(unit, 0) << f->name;  // neighbours one step apart exist: the step is not a multiple
    }
    // Every element that passes lies in its cell; the clipped ones do not.
    int64_t clipped = 0;
    for (int64_t i = 0; i < cols; ++i) {
      const float e = w[i] - t.values()[i];
      clipped += !(e >= -below[i] && e <= above[i]);
    }
    EXPECT_EQ(clipped, t.clipped()) << f->name;
    EXPECT_LT(t.clipped(), cols / 4) << f->name;  // ternary types clip the tails by design
  }
}

TEST(FakeQuant, Q4_0ClipsTheLevelItCannotReach) {
  // Q4_0's scale maps the largest magnitude (here -1) to code 0 (-8 d); +1 needs code 16 and is
  // clipped to 15 (0.875): its gradient stops. 0.9 rounds to 15 inside the cell: it passes.
  std::vector<float> w(32, 0.0f);
  w[0] = -1.0f;
  w[1] = 1.0f;
  w[2] = 0.9f;
  FakeQuantTensor t(*FindFakeQuant(GgmlType::kQ4_0), 1, 32);
  t.Refresh(w.data(), nullptr, nullptr);
  EXPECT_FLOAT_EQ(t.values()[1], 0.875f);
  std::vector<float> g(32, 1.0f);
  t.MaskGradient(g.data(), nullptr);
  EXPECT_EQ(g[0], 1.0f);
  EXPECT_EQ(g[1], 0.0f);
  EXPECT_EQ(g[2], 1.0f);
  EXPECT_EQ(t.clipped(), 1);
}

TEST(FakeQuant, LearnedScalesEncodeToTheNearestLevel) {
  const int64_t cols = 256;
  for (const FakeQuantFormat* f : AllFakeQuantFormats()) {
    if (f->encode_with_scales == nullptr) continue;
    const std::vector<float> w = RandomRow(cols, 3);
    FakeQuantTensor t(*f, 1, cols);
    t.Refresh(w.data(), nullptr, nullptr);
    std::vector<float> d(t.scale_count());
    t.CurrentScales(d.data());
    for (float& x : d) x *= 0.7f;  // a smaller step: more levels used, more clipping
    t.Refresh(w.data(), nullptr, nullptr, d.data());
    std::vector<float> got(t.scale_count());
    t.CurrentScales(got.data());
    for (size_t b = 0; b < d.size(); ++b) EXPECT_EQ(got[b], Fp16ToFp32(Fp32ToFp16(d[b]))) << f->name;
    std::vector<float> below(cols), above(cols);
    f->cells(t.bytes().data(), t.values().data(), cols, below.data(), above.data());
    for (int64_t i = 0; i < cols; ++i) {
      // Each element is on the level nearest to it: inside its cell, or clipped at an end level.
      const float e = w[i] - t.values()[i];
      const bool inside = e >= -below[i] * 1.0001f && e <= above[i] * 1.0001f;
      const float level = t.values()[i] / got[i / 32];
      const float lo = f->type == GgmlType::kQ8_0 ? -127 : -f->max_level, hi = f->type == GgmlType::kIQ4_NL ? 113 : (f->type == GgmlType::kQ8_0 ? 127 : f->max_level - 1);
      const bool end = std::fabs(level - lo) < 1e-3f || std::fabs(level - hi) < 1e-3f;
      EXPECT_TRUE(inside || end) << f->name << " element " << i << " error " << e;
    }
  }
}

TEST(FakeQuant, LsqScaleGradient) {
  // One Q8_0 block, d = 0.1: w = 0.26 sits on level 3 (0.3) inside its cell: dwq/dd = 3 - 2.6;
  // w = 20 is clipped at level 127: dwq/dd = 127. Gradient scale 1 / sqrt(32 * 127).
  std::vector<float> w(32, 0.0f), d = {0.1f};
  w[0] = 0.26f;
  w[1] = 20.0f;
  FakeQuantTensor t(*FindFakeQuant(GgmlType::kQ8_0), 1, 32);
  t.Refresh(w.data(), nullptr, nullptr, d.data());
  std::vector<float> g(32, 0.0f), gd = {0.0f};
  g[0] = 1.0f;
  g[1] = 0.5f;
  t.ScaleGradient(w.data(), g.data(), gd.data());
  const double d16 = Fp16ToFp32(Fp32ToFp16(0.1f));
  const double want = (1.0 * (3 - 0.26 / d16) + 0.5 * 127) / std::sqrt(32.0 * 127);
  EXPECT_NEAR(gd[0], want, 1e-4);
}

// The training forward on a model's own bytes (the QAT and QLoRA forward) is the engine's.
void ExpectGraphMatchesEngine(const std::string& type) {
  testing::TempDir dir;
  auto g = testing::SynthTiny(dir, type);
  ASSERT_TRUE(g.ok()) << g.status().message();
  auto model = LlamaModel::Load(*g);
  ASSERT_TRUE(model.ok());
  ThreadPool pool(2);
  FrozenBase base(*model, &pool);
  const int64_t T = 24;
  Graph graph(model->config(), 2, T, &pool);
  std::vector<int32_t> tokens(2 * T);
  for (int64_t i = 0; i < 2 * T; ++i) tokens[i] = static_cast<int32_t>((i * 37 + 5) % model->config().n_vocab);
  const float* got = graph.Forward(base.weights(), tokens.data());
  const int64_t V = model->config().n_vocab;
  for (int64_t s = 0; s < 2; ++s) {
    LlamaSession session(*model, T, 2);
    const float* want = session.Forward(std::span<const int32_t>(tokens.data() + s * T, T), 0, true);
    double mx = 0, scale = 0;
    for (int64_t i = 0; i < T * V; ++i) {
      mx = std::max(mx, static_cast<double>(std::fabs(got[s * T * V + i] - want[i])));
      scale = std::max(scale, static_cast<double>(std::fabs(want[i])));
    }
    // F32: float rounding (attention sums in another order). Quantized: the engine quantizes the
    // activations to 8 bits, and a last-bit difference upstream can move one code by one step.
    EXPECT_LT(mx / scale, type == "F32" ? 1e-4 : 5e-3) << type << " sequence " << s;
  }
}

TEST(TrainGraph, ForwardEqualsTheEngineF32) { ExpectGraphMatchesEngine("F32"); }
TEST(TrainGraph, ForwardEqualsTheEngineQ4K) { ExpectGraphMatchesEngine("Q4_K"); }
TEST(TrainGraph, ForwardEqualsTheEngineQ8_0) { ExpectGraphMatchesEngine("Q8_0"); }

TEST(Qat, WritesTheMixOfQuantizeAndLowersTheLoss) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  const std::string model = testing::SharedPath("models/stories260K/stories260K-f32.gguf");
  QatOptions o = SelfDistilled(model, /*samples=*/8, /*steps=*/24, /*batch=*/4, /*ctx=*/64);
  o.output = dir.Path("qat.gguf");
  o.type = "Q4_0";  // stories260K's ffn_down rows (172) fall back per llama.cpp's table
  o.train.lr = 2e-3f;
  o.train.warmup = 2;
  o.train.checkpoint = dir.Path("qat.ckpt");
  o.train.checkpoint_every = 12;
  std::vector<double> losses;
  auto rep = RunQat(o, [&](const std::string& line) {
    if (line.rfind("step ", 0) == 0) losses.push_back(std::stod(line.substr(line.find("loss ") + 5)));
  });
  ASSERT_TRUE(rep.ok()) << rep.status().message();
  ASSERT_GE(losses.size(), 4u);
  EXPECT_LT(rep->last_loss, 0.8 * rep->first_loss) << rep->first_loss << " -> " << rep->last_loss;

  QuantizeOptions qo;
  qo.input = model;
  qo.output = dir.Path("ptq.gguf");
  qo.type = "Q4_0";
  qo.threads = 1;
  auto ptq = QuantizeModel(qo);
  ASSERT_TRUE(ptq.ok()) << ptq.status().message();
  EXPECT_EQ(rep->file_size, ptq->file_size);
  auto a = GgufFile::Open(o.output), b = GgufFile::Open(qo.output);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->tensors().size(), b->tensors().size());
  for (size_t i = 0; i < a->tensors().size(); ++i) {
    EXPECT_EQ(a->tensors()[i].name, b->tensors()[i].name);
    EXPECT_EQ(a->tensors()[i].type, b->tensors()[i].type) << a->tensors()[i].name;
  }
  EXPECT_EQ(*a->GetUInt("general.file_type"), *b->GetUInt("general.file_type"));

  // Resuming a finished run asks for more steps.
  o.train.resume = true;
  auto again = RunQat(o, {});
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("already at step 24"), std::string::npos) << again.status().message();
}

// Step 0 of QAT is post-training quantization: with the learning rate at zero the file is `lowbit
// quantize`'s byte for byte, with the searched grid and with the frozen one; and when training only
// harms (a learning rate far too high), the held-out selection writes that step-0 state.
TEST(Qat, StepZeroIsPtqAndTheHeldOutSelectionFallsBackToIt) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  const std::string model = testing::SharedPath("models/stories5M/stories5M-f32.gguf");  // K-quant rows
  QuantizeOptions qo;
  qo.input = model;
  qo.output = dir.Path("ptq.gguf");
  qo.type = "Q4_K_M";
  qo.threads = 1;
  ASSERT_TRUE(QuantizeModel(qo).ok());
  const std::vector<uint8_t> ptq = testing::ReadFileBytes(qo.output);
  QatOptions o = SelfDistilled(model, /*samples=*/2, /*steps=*/1, /*batch=*/2, /*ctx=*/16);
  o.type = "Q4_K_M";
  o.train.lr = 0.0f;
  o.holdout = 0;
  for (const char* grid : {"search", "frozen"}) {
    o.grid = grid;
    o.output = dir.Path(std::string(grid) + ".gguf");
    auto rep = RunQat(o, {});
    ASSERT_TRUE(rep.ok()) << rep.status().message();
    EXPECT_EQ(testing::ReadFileBytes(o.output), ptq) << "--grid " << grid;
  }
  o.grid = "search";
  o.train.lr = 0.5f;
  o.train.steps = 4;
  o.holdout = 2;
  o.eval_every = 1;
  o.output = dir.Path("harmed.gguf");
  int evaluations = 0;
  auto rep = RunQat(o, [&](const std::string& line) { evaluations += line.rfind("held-out KL ", 0) == 0; });
  ASSERT_TRUE(rep.ok()) << rep.status().message();
  EXPECT_EQ(evaluations, 5);  // steps 0 to 4
  EXPECT_EQ(rep->selected_step, 0);
  EXPECT_GT(rep->last_loss, rep->first_loss);  // the training did harm
  EXPECT_EQ(testing::ReadFileBytes(o.output), ptq);
}

// The default schedule follows the type's bits per weight: the 2-bit mixes keep 600 steps at 1e-4 and
// the last step, the 4-bit mixes train 200 steps at 1e-5 with the held-out selection.
TEST(Qat, TheDefaultScheduleFollowsTheBitsPerWeight) {
  EXPECT_EQ(DefaultQatSchedule(2.28).lr, 1e-4f);
  EXPECT_EQ(DefaultQatSchedule(3.5).steps, 600);
  EXPECT_EQ(DefaultQatSchedule(3.02).holdout, 0);
  EXPECT_EQ(DefaultQatSchedule(3.51).lr, 1e-5f);
  EXPECT_EQ(DefaultQatSchedule(4.74).steps, 200);
  EXPECT_EQ(DefaultQatSchedule(4.74).holdout, 32);
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  // steps given: only the learning rate and the held-out count come from the type
  QatOptions o = SelfDistilled(testing::SharedPath("models/stories5M/stories5M-f32.gguf"), /*samples=*/1, /*steps=*/1, /*batch=*/1, /*ctx=*/8);
  o.train.lr = -1.0f;
  o.holdout = -1;
  for (const auto& [type, line] : {std::pair<std::string, std::string>{"Q2_K", "average 3.02 bits per weight: 1 steps at a peak learning rate of 1e-04, no held-out selection"},
                                   {"Q4_K_M", "average 4.74 bits per weight: 1 steps at a peak learning rate of 1e-05, 32 sequences held out"}}) {
    o.type = type;
    o.output = dir.Path(type + ".gguf");
    std::string said;
    int evaluations = 0;
    auto rep = RunQat(o, [&](const std::string& l) {
      if (l.find("bits per weight") != std::string::npos) said = l;
      evaluations += l.rfind("held-out KL ", 0) == 0;
    });
    ASSERT_TRUE(rep.ok()) << rep.status().message();
    EXPECT_NE(said.find(line), std::string::npos) << type << ": " << said;
    EXPECT_EQ(evaluations, type == "Q2_K" ? 0 : 2) << type;  // steps 0 and 1
  }
}

TEST(Qat, LearnedScalesAreWhatTheFileHolds) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  QatOptions o = SelfDistilled(testing::SharedPath("models/stories260K/stories260K-f32.gguf"), /*samples=*/4, /*steps=*/6, /*batch=*/2, /*ctx=*/32);
  o.output = dir.Path("lsq.gguf");
  o.type = "Q4_0";
  o.pure = true;
  o.learn_scales = true;
  o.train.lr = 1e-3f;
  o.holdout = 0;  // the file holds the last step, as the checkpoint does
  o.train.checkpoint = dir.Path("lsq.ckpt");
  auto rep = RunQat(o, {});
  ASSERT_TRUE(rep.ok()) << rep.status().message();
  // The checkpoint's learned scales, rounded to fp16, are the d of the file's blocks.
  auto ck = GgufFile::Open(o.train.checkpoint);
  auto out = GgufFile::Open(o.output);
  ASSERT_TRUE(ck.ok() && out.ok());
  const GgufTensorInfo* sc = ck->FindTensor("blk.0.attn_q.weight.lsq_d");
  const GgufTensorInfo* w = out->FindTensor("blk.0.attn_q.weight");
  ASSERT_NE(sc, nullptr);
  ASSERT_EQ(w->type, GgmlType::kQ4_0);
  const float* d = reinterpret_cast<const float*>(sc->data);
  int moved = 0;
  auto src = GgufFile::Open(o.model);
  ASSERT_TRUE(src.ok());
  std::vector<uint8_t> ptq(w->n_bytes);
  FromFloatFor(GgmlType::kQ4_0)(reinterpret_cast<const float*>(src->FindTensor("blk.0.attn_q.weight")->data), ptq.data(),
                                 static_cast<int64_t>(w->n_elements), nullptr);
  for (uint64_t b = 0; b < sc->n_elements; ++b) {
    uint16_t h, h0;
    std::memcpy(&h, w->data + b * 18, 2);
    std::memcpy(&h0, ptq.data() + b * 18, 2);
    EXPECT_EQ(h, Fp32ToFp16(d[b])) << b;
    moved += h != h0;
  }
  EXPECT_GT(moved, 0);  // the scales did train
}

TEST(Qat, RefusesQuantizedInputsAndMissingData) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  QatOptions o;
  o.model = testing::SharedPath("models/stories260K/stories260K-q8_0-mix.gguf");
  o.output = dir.Path("x.gguf");
  o.type = "Q4_0";
  o.self_distill = true;
  o.train.ctx = 32;
  auto r = RunQat(o, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("float weights"), std::string::npos) << r.status().message();
  o.self_distill = false;
  r = RunQat(o, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("--train TEXT or --self-distill"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace lowbit::train

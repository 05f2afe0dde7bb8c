// QAT on the linear int-N grid: the fake quantization is QuantizeLinear's RTN in the engine's
// grouped-integer rows (values bit for bit); the clipping cells are half the group's step; the
// given-scale encoder puts each element on its nearest level; LSQ's scale gradient; the training
// forward through a padded folder's input map is the engine's; `qat --format gptq` writes a folder
// that reads back as exactly the fake-quantized weights of the final step.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include "lowbit/numeric/half.h"
#include "lowbit/pipeline/model_source.h"
#include "lowbit/pipeline/quantize_folder.h"
#include "lowbit/train/fake_quant.h"
#include "lowbit/train/graph.h"
#include "lowbit/train/qat.h"
#include "lowbit/train/weights.h"
#include "test_data.h"

namespace lowbit::train {
namespace {

std::vector<float> RandomRows(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = nd(rng);
  for (int64_t i = 0; i < n; i += 61) v[i] *= 6.0f;
  return v;
}

struct Case {
  int bits;
  int64_t group;  // -1: per channel
  bool sym;
  int64_t cols;
  QuantConvention convention = QuantConvention::kGptq;
};

LinearQuantSpec SpecOf(const Case& c) {
  LinearQuantSpec s;
  s.bits = c.bits;
  s.sym = c.sym;
  s.granularity = c.group < 0 ? QuantGranularity::kPerChannel : QuantGranularity::kPerGroup;
  s.group_size = c.group < 0 ? 128 : c.group;
  s.convention = c.convention;
  return s;
}

const Case kCases[] = {
    {2, 64, true, 256},  {2, 64, false, 256}, {3, 128, false, 288}, {4, 32, true, 512},  {4, 48, false, 160},
    {8, 64, true, 288},  {5, 128, false, 256}, {4, -1, false, 288}, {4, 64, false, 256, QuantConvention::kAwq},
};

TEST(IntGridFakeQuant, IsQuantizeLinearInTheEnginesRows) {
  const int64_t rows = 5;
  for (const Case& c : kCases) {
    const LinearQuantSpec spec = SpecOf(c);
    auto f = IntGridFakeQuant(spec, c.cols);
    ASSERT_TRUE(f.ok()) << f.status().message();
    SCOPED_TRACE(f->name);
    const std::vector<float> w = RandomRows(rows * c.cols, 7);
    FakeQuantTensor t(*f, rows, c.cols);
    ThreadPool pool(2);
    t.Refresh(w.data(), nullptr, &pool);
    auto q = QuantizeLinear(w.data(), rows, c.cols, spec);
    ASSERT_TRUE(q.ok());
    const std::vector<float> want = q->Dequantize();
    ASSERT_EQ(std::memcmp(want.data(), t.values().data(), want.size() * 4), 0);
    // The bytes are what a folder's layer becomes at load: the grid packed as PlanGrouped lays it out.
    const GroupedLayout& l = *f->layout;
    EXPECT_EQ(f->type, l.type);
    EXPECT_EQ(t.row_bytes(), l.row_bytes());
    EXPECT_EQ(f->x_map.empty(), !l.padded());
    std::vector<uint16_t> d(q->scales.size());
    for (size_t i = 0; i < d.size(); ++i) d[i] = Fp32ToFp16(q->scales[i]);
    std::vector<uint8_t> packed(static_cast<size_t>(l.row_bytes() * rows));
    ASSERT_TRUE(PackGroupedRows(l, q->codes.data(), d.data(), q->zeros.data(), rows, packed.data()).ok());
    EXPECT_EQ(packed, t.bytes());
    // And they unpack to the same codes, scales and zero points.
    std::vector<uint8_t> codes(q->codes.size());
    std::vector<uint16_t> d2(d.size());
    std::vector<int32_t> z2(d.size());
    UnpackGroupedRows(l, t.bytes().data(), rows, codes.data(), d2.data(), z2.data());
    EXPECT_EQ(codes, q->codes);
    EXPECT_EQ(d2, d);
    EXPECT_EQ(z2, q->zeros);
    // Asymmetric min/max ranges never clip. GPTQ's symmetric grid maps +max|x| to code 2^bits, one
    // past the top (levels -2^(b-1)..2^(b-1)-1 steps): those weights, and only they, sit clipped at
    // the top code.
    std::vector<float> below(static_cast<size_t>(c.cols)), above(static_cast<size_t>(c.cols));
    int64_t clipped = 0;
    for (int64_t r = 0; r < rows; ++r) {
      f->cells(t.bytes().data() + r * t.row_bytes(), t.values().data() + r * c.cols, c.cols, below.data(), above.data());
      for (int64_t i = 0; i < c.cols; ++i) {
        const float e = w[r * c.cols + i] - t.values()[r * c.cols + i];
        if (e >= -below[i] && e <= above[i]) continue;
        ++clipped;
        EXPECT_TRUE(c.sym) << "row " << r << " column " << i;
        EXPECT_EQ(codes[r * c.cols + i], (1 << c.bits) - 1) << "row " << r << " column " << i;
      }
    }
    EXPECT_EQ(clipped, t.clipped());
  }
}

TEST(IntGridFakeQuant, CellsAreHalfTheGroupsStep) {
  const Case c{3, 64, false, 288};
  auto f = IntGridFakeQuant(SpecOf(c), c.cols);
  ASSERT_TRUE(f.ok());
  const std::vector<float> w = RandomRows(c.cols, 9);
  FakeQuantTensor t(*f, 1, c.cols);
  t.Refresh(w.data(), nullptr, nullptr);
  auto q = QuantizeLinear(w.data(), 1, c.cols, SpecOf(c));
  ASSERT_TRUE(q.ok());
  std::vector<float> below(c.cols), above(c.cols);
  f->cells(t.bytes().data(), t.values().data(), c.cols, below.data(), above.data());
  for (int64_t i = 0; i < c.cols; ++i) {
    EXPECT_EQ(below[i], q->scales[i / 64] * 0.5f) << i;
    EXPECT_EQ(above[i], below[i]) << i;
  }
  // A weight beyond the grid's end is clipped and its gradient stops; the scales read back.
  std::vector<float> d(t.scale_count());
  t.CurrentScales(d.data());
  ASSERT_EQ(d.size(), 5u);  // 64, 64, 64, 64, 32 columns
  for (size_t g = 0; g < d.size(); ++g) EXPECT_EQ(d[g], q->scales[g]);
  for (float& x : d) x *= 0.5f;
  t.Refresh(w.data(), nullptr, nullptr, d.data());
  EXPECT_GT(t.clipped(), 0);
  std::vector<float> g(c.cols, 1.0f);
  t.MaskGradient(g.data(), nullptr);
  int64_t stopped = 0;
  for (float x : g) stopped += x == 0.0f;
  EXPECT_EQ(stopped, t.clipped());
}

TEST(IntGridFakeQuant, GivenScalesPutEachWeightOnItsNearestLevel) {
  for (const Case& c : kCases) {
    auto f = IntGridFakeQuant(SpecOf(c), c.cols);
    ASSERT_TRUE(f.ok());
    SCOPED_TRACE(f->name);
    ASSERT_NE(f->encode_with_scales, nullptr);
    const std::vector<float> w = RandomRows(c.cols, 11);
    FakeQuantTensor t(*f, 1, c.cols);
    t.Refresh(w.data(), nullptr, nullptr);
    std::vector<float> d(t.scale_count());
    t.CurrentScales(d.data());
    for (float& x : d) x *= 0.7f;
    t.Refresh(w.data(), nullptr, nullptr, d.data());
    std::vector<float> got(t.scale_count());
    t.CurrentScales(got.data());
    for (size_t b = 0; b < d.size(); ++b) EXPECT_EQ(got[b], Fp16ToFp32(Fp32ToFp16(d[b])));
    const int64_t g = f->scale_block;
    std::vector<uint8_t> codes(static_cast<size_t>(c.cols));
    std::vector<uint16_t> d16(d.size());
    std::vector<int32_t> z(d.size());
    UnpackGroupedRows(*f->layout, t.bytes().data(), 1, codes.data(), d16.data(), z.data());
    for (int64_t i = 0; i < c.cols; ++i) {
      const float s = got[i / g];
      EXPECT_EQ(t.values()[i], s * static_cast<float>(codes[i] - z[i / g]));
      // The nearest level, or an end level when the weight lies beyond the grid.
      const float e = w[i] - t.values()[i];
      const bool inside = std::fabs(e) <= 0.5f * s * 1.0001f;
      const bool end = codes[i] == 0 || codes[i] == (1 << c.bits) - 1;
      EXPECT_TRUE(inside || end) << "element " << i << " error " << e << " step " << s;
    }
    if (c.sym) {
      for (int32_t zz : z) EXPECT_EQ(zz, 1 << (c.bits - 1));
    }
  }
}

TEST(IntGridFakeQuant, LsqScaleGradient) {
  // 2-bit sym g32, d = 0.5: levels (q - 2) * d for q in 0..3. w = 0.6 is on level 1 (0.5) inside its
  // cell: dwq/dd = 1 - 0.6 / 0.5; w = 3 is clipped at level 1: dwq/dd = 1. Scale 1 / sqrt(32 * 2).
  LinearQuantSpec spec;
  spec.bits = 2;
  spec.sym = true;
  spec.group_size = 32;
  auto f = IntGridFakeQuant(spec, 32);
  ASSERT_TRUE(f.ok());
  std::vector<float> w(32, 0.0f), d = {0.5f};
  w[0] = 0.6f;
  w[1] = 3.0f;
  FakeQuantTensor t(*f, 1, 32);
  t.Refresh(w.data(), nullptr, nullptr, d.data());
  EXPECT_EQ(t.values()[0], 0.5f);
  EXPECT_EQ(t.values()[1], 0.5f);
  EXPECT_EQ(t.clipped(), 1);
  std::vector<float> g(32, 0.0f), gd = {0.0f};
  g[0] = 1.0f;
  g[1] = 0.5f;
  t.ScaleGradient(w.data(), g.data(), gd.data());
  EXPECT_NEAR(gd[0], (1.0 * (1 - 0.6 / 0.5) + 0.5 * 1) / std::sqrt(32.0 * 2), 1e-6);
}

TEST(IntGridFakeQuant, BadSpecsAreRefused) {
  LinearQuantSpec spec;
  spec.bits = 9;
  EXPECT_FALSE(IntGridFakeQuant(spec, 256).ok());
  spec.bits = 4;
  spec.granularity = QuantGranularity::kPerTensor;
  auto r = IntGridFakeQuant(spec, 256);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("per-group or per-channel"), std::string::npos) << r.status().message();
}

// A folder whose groups do not fill whole blocks (groups of 48 in blocks of 64): the training
// forward through its input map is the engine's (QLoRA on such a folder, and QAT's padded rows).
TEST(TrainGraph, ForwardEqualsTheEngineOnAPaddedGptqFolder) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  const std::string folder = dir.Path("w4g48");
  auto qr = QuantizeToFolder(QuantizeOptions{.input = testing::SharedPath("models/stories5M/hf-f32"), .output = folder, .threads = 2},
                             FolderQuantOptions{.format = "gptq", .bits = 4, .group_size = 48, .sym = false});
  ASSERT_TRUE(qr.ok()) << qr.status().message();
  auto g = OpenModel(folder);
  ASSERT_TRUE(g.ok()) << g.status().message();
  auto model = LlamaModel::Load(*g);
  ASSERT_TRUE(model.ok()) << model.status().message();
  ASSERT_NE(model->layers[0].wq.x_map, nullptr);
  ThreadPool pool(2);
  FrozenBase base(*model, &pool);
  const int64_t T = 24;
  Graph graph(model->config(), 1, T, &pool);
  std::vector<int32_t> tokens(T);
  for (int64_t i = 0; i < T; ++i) tokens[i] = static_cast<int32_t>((i * 37 + 5) % model->config().n_vocab);
  const float* got = graph.Forward(base.weights(), tokens.data());
  LlamaSession session(*model, T, 2);
  const float* want = session.Forward(std::span<const int32_t>(tokens.data(), T), 0, true);
  const int64_t V = model->config().n_vocab;
  double mx = 0, scale = 0;
  for (int64_t i = 0; i < T * V; ++i) {
    mx = std::max(mx, static_cast<double>(std::fabs(got[i] - want[i])));
    scale = std::max(scale, static_cast<double>(std::fabs(want[i])));
  }
  EXPECT_LT(mx / scale, 5e-3);
}

// `qat --format gptq`: the folder holds exactly the last step's fake quantization (recomputed here from
// the checkpoint's master weights), and the other tensors' trained F32 values.
TEST(Qat, GptqFolderHoldsTheFakeQuantizedWeights) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  QatOptions o;
  o.model = testing::SharedPath("models/stories5M/hf-f32");
  o.output = dir.Path("qat-w2g64");
  o.format = "gptq";
  o.folder.bits = 2;
  o.folder.group_size = 64;
  o.folder.sym = false;
  o.train_text = testing::SharedPath("data/tinystories/TinyStoriesV2-GPT4-valid.first100.txt");
  o.threads = 2;
  o.train.steps = 3;
  o.train.batch = 1;
  o.train.micro_batch = 1;
  o.train.ctx = 32;
  o.train.lr = 1e-3f;
  o.train.warmup = 1;
  o.train.checkpoint = dir.Path("qat.ckpt");
  o.holdout = 0;  // the folder holds the last step, as the checkpoint does
  auto rep = RunQat(o, {});
  ASSERT_TRUE(rep.ok()) << rep.status().message();
  EXPECT_EQ(rep->mix, "gptq int2 g64 asym");
  auto cfg = LoadQuantConfig(o.output);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_EQ(cfg->bits, 2);
  EXPECT_EQ(cfg->group_size, 64);
  EXPECT_FALSE(cfg->sym);

  auto ck = GgufFile::Open(o.train.checkpoint);
  auto src = OpenModel(o.model);
  auto out = OpenModel(o.output);
  ASSERT_TRUE(ck.ok() && src.ok() && out.ok());
  auto model = LlamaModel::Load(*out);  // what `lowbit run -m DIR` runs
  ASSERT_TRUE(model.ok()) << model.status().message();
  int matrices = 0, moved = 0;
  for (const GgufTensorInfo& t : src->tensors()) {
    SCOPED_TRACE(t.name);
    const GgufTensorInfo* master = ck->FindTensor(t.name);
    const GgufTensorInfo* got = out->FindTensor(t.name);
    ASSERT_NE(master, nullptr);
    ASSERT_NE(got, nullptr);
    ASSERT_EQ(master->type, GgmlType::kF32);
    const auto* m = reinterpret_cast<const float*>(master->data);
    const bool matrix = t.name.starts_with("blk.") && t.n_dims == 2;
    if (!matrix) {
      ASSERT_EQ(got->type, GgmlType::kF32);
      EXPECT_EQ(std::memcmp(got->data, m, master->n_bytes), 0);
      moved += std::memcmp(t.data, m, master->n_bytes) != 0;
      continue;
    }
    ++matrices;
    const auto cols = static_cast<int64_t>(t.dims[0]), rows = static_cast<int64_t>(t.dims[1]);
    LinearQuantSpec spec;
    spec.bits = 2;
    spec.sym = false;
    spec.group_size = 64;
    auto f = IntGridFakeQuant(spec, cols);
    ASSERT_TRUE(f.ok());
    FakeQuantTensor fq(*f, rows, cols);
    fq.Refresh(m, nullptr, nullptr);
    ASSERT_EQ(got->type, f->type);
    ASSERT_EQ(got->n_bytes, fq.bytes().size());
    EXPECT_EQ(std::memcmp(got->data, fq.bytes().data(), got->n_bytes), 0);
  }
  EXPECT_EQ(matrices, 6 * 7);
  EXPECT_GT(moved, 0);  // the float tensors trained too

  // A second run into the same folder is refused before any training.
  auto again = RunQat(o, {});
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("already exists"), std::string::npos) << again.status().message();
  // A GGUF input cannot become a folder (no config or tokenizer files to carry over).
  o.model = testing::SharedPath("models/stories5M/stories5M-f32.gguf");
  o.output = dir.Path("other");
  auto gguf = RunQat(o, {});
  ASSERT_FALSE(gguf.ok());
  EXPECT_NE(gguf.status().message().find("Hugging Face folder"), std::string::npos) << gguf.status().message();
  o.type = "Q2_K";
  auto both = RunQat(o, {});
  ASSERT_FALSE(both.ok());
  EXPECT_NE(both.status().message().find("--type Q2_K is for GGUF output"), std::string::npos) << both.status().message();
}

}  // namespace
}  // namespace lowbit::train

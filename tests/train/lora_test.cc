// LoRA adapters: run-time application equals the merged model within float rounding; GGUF and
// PEFT files round-trip (PEFT's Q/K rows in Hugging Face order, checked against the real stories5M
// HF and GGUF weights); several adapters add up; adapters for another model, half pairs and broken
// configs are refused with a message that names the problem.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "lowbit/formats/gguf_writer.h"
#include "lowbit/formats/safetensors.h"
#include "lowbit/numeric/dequant.h"
#include "lowbit/pipeline/convert.h"
#include "lowbit/train/lora_file.h"
#include "../model/synth_tiny.h"
#include "test_data.h"

namespace lowbit::train {
namespace {

using testing::TempDir;

LoraAdapter RandomAdapter(const LlamaModel& m, const std::vector<std::string>& bases, int64_t rank, float alpha, uint64_t seed) {
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::normal_distribution<float> nd(0.0f, 0.05f);
  LoraAdapter a;
  a.arch = m.config().arch;
  a.alpha = alpha;
  for (const std::string& b : bases) {
    const WeightView* w = nullptr;
    if (b == "output.weight") w = &m.output;
    for (size_t l = 0; l < m.layers.size() && w == nullptr; ++l) {
      const std::string p = "blk." + std::to_string(l) + ".";
      if (b == p + "attn_q.weight") w = &m.layers[l].wq;
      if (b == p + "attn_k.weight") w = &m.layers[l].wk;
      if (b == p + "ffn_down.weight") w = &m.layers[l].down;
      if (b == p + "ffn_up.weight") w = &m.layers[l].up;
    }
    LoraTensor t;
    t.base = b;
    t.rank = rank;
    t.rows = w->rows;
    t.cols = w->cols;
    t.a.resize(static_cast<size_t>(rank * t.cols));
    t.b.resize(static_cast<size_t>(t.rows * rank));
    for (float& v : t.a) v = nd(rng);
    for (float& v : t.b) v = nd(rng);
    t.scale = alpha / static_cast<float>(rank);
    a.tensors.push_back(std::move(t));
  }
  return a;
}

std::vector<float> Logits(const LlamaModel& m, const std::vector<int32_t>& tokens) {
  LlamaSession s(m, 64, 2);
  const float* l = s.Forward(tokens, 0, true);
  return std::vector<float>(l, l + tokens.size() * m.config().n_vocab);
}

double MaxRelDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double mx = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    mx = std::max(mx, static_cast<double>(std::fabs(a[i] - b[i])));
    scale = std::max(scale, static_cast<double>(std::fabs(b[i])));
  }
  return mx / scale;
}

TEST(Lora, RunTimeApplicationEqualsTheMergedModel) {
  TempDir dir;
  auto g = testing::SynthTiny(dir);
  ASSERT_TRUE(g.ok()) << g.status().message();
  auto base = LlamaModel::Load(*g);
  ASSERT_TRUE(base.ok());
  const std::vector<std::string> bases = {"blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.1.ffn_down.weight", "output.weight"};
  const LoraAdapter a1 = RandomAdapter(*base, bases, 4, 8.0f, 1), a2 = RandomAdapter(*base, bases, 2, 0.0f, 2);
  ASSERT_TRUE(WriteLoraGguf(a1, base->config().arch, dir.Path("a1.gguf")).ok());
  LoraAdapter a2_alpha0 = a2;
  for (auto& t : a2_alpha0.tensors) t.scale = 1.0f;  // alpha 0: the user's scale alone
  ASSERT_TRUE(WriteLoraGguf(a2_alpha0, base->config().arch, dir.Path("a2.gguf")).ok());
  const std::vector<int32_t> tokens = {1, 5, 9, 200, 17, 3, 44, 300, 12, 8};
  const std::vector<float> plain = Logits(*base, tokens);

  const std::vector<LoraSpec> specs = {{dir.Path("a1.gguf"), 1.0f}, {dir.Path("a2.gguf"), 0.5f}};
  auto model = LlamaModel::Load(*g);
  ASSERT_TRUE(model.ok());
  auto set = AttachLoraAdapters(&*model, *g, specs);
  ASSERT_TRUE(set.ok()) << set.status().message();
  const std::vector<float> runtime = Logits(*model, tokens);
  EXPECT_GT(MaxRelDiff(runtime, plain), 1e-3);  // the adapters change the output

  MergeOptions mo{.base = g->name(), .output = dir.Path("merged.gguf"), .adapters = specs, .threads = 2};
  auto rep = MergeLora(mo);
  ASSERT_TRUE(rep.ok()) << rep.status().message();
  EXPECT_EQ(rep->merged, 4);
  auto mg = GgufFile::Open(dir.Path("merged.gguf"));
  ASSERT_TRUE(mg.ok());
  for (const auto& t : mg->tensors()) EXPECT_EQ(t.type, GgmlType::kF32) << t.name;  // an F32 base stays F32
  auto merged = LlamaModel::Load(*mg);
  ASSERT_TRUE(merged.ok());
  EXPECT_LT(MaxRelDiff(runtime, Logits(*merged, tokens)), 2e-5);

  // The merged tensor is base + sum of scale * B A.
  const LoraTensor& t = a1.tensors[0];
  const GgufTensorInfo* bt = g->FindTensor(t.base);
  const GgufTensorInfo* mt = mg->FindTensor(t.base);
  const float* bw = reinterpret_cast<const float*>(bt->data);
  const float* mw = reinterpret_cast<const float*>(mt->data);
  for (int64_t r = 0; r < t.rows; r += 37) {
    for (int64_t c = 0; c < t.cols; c += 11) {
      double d1 = 0, d2 = 0;
      for (int64_t k = 0; k < t.rank; ++k) d1 += static_cast<double>(t.b[r * t.rank + k]) * t.a[k * t.cols + c];
      const LoraTensor& u = a2.tensors[0];
      for (int64_t k = 0; k < u.rank; ++k) d2 += static_cast<double>(u.b[r * u.rank + k]) * u.a[k * u.cols + c];
      EXPECT_NEAR(mw[r * t.cols + c], bw[r * t.cols + c] + 2.0 * d1 + 0.5 * d2, 1e-5);
    }
  }
  set->get()->Detach(&*model);
  EXPECT_EQ(MaxRelDiff(Logits(*model, tokens), plain), 0.0);
}

TEST(Lora, QuantizedBaseMergesToF16AndAppliesAtRunTime) {
  TempDir dir;
  auto g = testing::SynthTiny(dir, "Q4_K");
  ASSERT_TRUE(g.ok()) << g.status().message();
  auto model = LlamaModel::Load(*g);
  ASSERT_TRUE(model.ok());
  const LoraAdapter a = RandomAdapter(*model, {"blk.1.ffn_up.weight"}, 8, 16.0f, 3);
  ASSERT_TRUE(WriteLoraGguf(a, model->config().arch, dir.Path("a.gguf"), GgmlType::kF16).ok());
  MergeOptions mo{.base = g->name(), .output = dir.Path("merged.gguf"), .adapters = {{dir.Path("a.gguf"), 1.0f}}};
  ASSERT_TRUE(MergeLora(mo).ok());
  auto mg = GgufFile::Open(dir.Path("merged.gguf"));
  ASSERT_TRUE(mg.ok());
  EXPECT_EQ(mg->FindTensor("blk.1.ffn_up.weight")->type, GgmlType::kF16);  // as llama-export-lora
  EXPECT_EQ(mg->FindTensor("blk.1.ffn_down.weight")->type, GgmlType::kQ4_K);  // copied
  const std::vector<int32_t> tokens = {1, 2, 3, 4, 5};
  const std::vector<LoraSpec> specs = {{dir.Path("a.gguf"), 1.0f}};
  auto set = AttachLoraAdapters(&*model, *g, specs);
  ASSERT_TRUE(set.ok()) << set.status().message();
  // The run-time product keeps the quantized base; the merged file holds F16 of its dequantized sum:
  // close, not equal.
  auto merged = LlamaModel::Load(*mg);
  ASSERT_TRUE(merged.ok());
  EXPECT_LT(MaxRelDiff(Logits(*model, tokens), Logits(*merged, tokens)), 0.02);
}

TEST(Lora, GgufAndPeftRoundTrip) {
  TempDir dir;
  auto g = testing::SynthTiny(dir);
  ASSERT_TRUE(g.ok());
  auto model = LlamaModel::Load(*g);
  ASSERT_TRUE(model.ok());
  const LoraAdapter a = RandomAdapter(*model, {"blk.0.attn_q.weight", "blk.1.attn_k.weight", "blk.0.ffn_down.weight"}, 4, 8.0f, 4);
  ASSERT_TRUE(WritePeftAdapter(a, model->config(), dir.Path("peft"), "tiny").ok());
  auto p = ReadLoraAdapter(dir.Path("peft"), model->config());
  ASSERT_TRUE(p.ok()) << p.status().message();
  ASSERT_TRUE(WriteLoraGguf(*p, model->config().arch, dir.Path("back.gguf")).ok());
  auto back = ReadLoraAdapter(dir.Path("back.gguf"), model->config());
  ASSERT_TRUE(back.ok()) << back.status().message();
  for (const LoraAdapter* x : {&*p, &*back}) {
    ASSERT_EQ(x->tensors.size(), a.tensors.size());
    for (const LoraTensor& t : a.tensors) {
      const LoraTensor* u = x->Find(t.base);
      ASSERT_NE(u, nullptr) << t.base;
      EXPECT_EQ(u->a, t.a);
      EXPECT_EQ(u->b, t.b);
      EXPECT_FLOAT_EQ(u->scale, t.scale);
    }
  }
  EXPECT_FLOAT_EQ(back->alpha, 8.0f);
  // PEFT keeps B's q/k rows in Hugging Face order: not GGUF's.
  auto st = SafetensorsFile::Open(dir.Path("peft/adapter_model.safetensors"));
  ASSERT_TRUE(st.ok());
  const StTensor* bq = st->Find("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight");
  ASSERT_NE(bq, nullptr);
  EXPECT_NE(std::memcmp(bq->data.data(), a.tensors[0].b.data(), bq->data.size()), 0);
}

TEST(Lora, PeftQkRowsFollowTheHuggingFaceWeights) {
  LOWBIT_REQUIRE_SHARED();
  // stories5M's HF q_proj/k_proj are permuted as HF's conversion does; GGUF's are not. A PEFT delta
  // on the HF weights, read into GGUF order, must be the same change of the same rows.
  auto hf = SafetensorsFile::Open(testing::SharedPath("models/stories5M/hf-f32/model.safetensors"));
  auto g = GgufFile::Open(testing::SharedPath("models/stories5M/stories5M-f32.gguf"));
  ASSERT_TRUE(hf.ok() && g.ok());
  auto model = LlamaModel::Load(*g);
  ASSERT_TRUE(model.ok());
  TempDir dir;
  const LoraAdapter a = RandomAdapter(*model, {"blk.2.attn_q.weight", "blk.2.attn_k.weight"}, 4, 4.0f, 5);
  ASSERT_TRUE(WritePeftAdapter(a, model->config(), dir.Path("peft"), "stories5M").ok());
  auto st = SafetensorsFile::Open(dir.Path("peft/adapter_model.safetensors"));
  ASSERT_TRUE(st.ok());
  for (const char* proj : {"q", "k"}) {
    const std::string gname = std::string("blk.2.attn_") + proj + ".weight";
    const std::string hname = std::string("model.layers.2.self_attn.") + proj + "_proj";
    const float* wg = reinterpret_cast<const float*>(g->FindTensor(gname)->data);
    const float* wh = reinterpret_cast<const float*>(hf->Find(hname + ".weight")->data.data());
    const float* bh = reinterpret_cast<const float*>(st->Find("base_model.model." + hname + ".lora_B.weight")->data.data());
    const LoraTensor& t = *a.Find(gname);
    // Find the HF row of each GGUF row from the weights themselves, then compare B's rows.
    for (int64_t r = 0; r < t.rows; ++r) {
      int64_t match = -1;
      for (int64_t h = 0; h < t.rows && match < 0; ++h) {
        if (std::memcmp(wg + r * t.cols, wh + h * t.cols, static_cast<size_t>(t.cols) * 4) == 0) match = h;
      }
      ASSERT_GE(match, 0) << gname << " row " << r;
      EXPECT_EQ(std::memcmp(t.b.data() + r * t.rank, bh + match * t.rank, static_cast<size_t>(t.rank) * 4), 0) << gname << " row " << r;
    }
  }
}

void WriteText(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

TEST(Lora, BadAdaptersAreRefusedWithAMessage) {
  TempDir dir;
  auto g = testing::SynthTiny(dir);
  ASSERT_TRUE(g.ok());
  auto model = LlamaModel::Load(*g);
  ASSERT_TRUE(model.ok());
  auto expect_error = [&](const std::string& path, const std::string& part) {
    std::vector<LoraSpec> specs = {{path, 1.0f}};
    auto m = LlamaModel::Load(*g);
    auto r = AttachLoraAdapters(&*m, *g, specs);
    ASSERT_FALSE(r.ok()) << path;
    EXPECT_NE(r.status().message().find(part), std::string::npos) << r.status().message();
  };
  // Another model's shapes (rows of a different weight).
  LoraAdapter wrong = RandomAdapter(*model, {"blk.0.ffn_up.weight"}, 2, 4.0f, 6);
  wrong.tensors[0].base = "blk.0.attn_q.weight";
  ASSERT_TRUE(WriteLoraGguf(wrong, model->config().arch, dir.Path("wrong.gguf")).ok());
  expect_error(dir.Path("wrong.gguf"), "another model");
  // A weight the model does not have.
  LoraAdapter extra = RandomAdapter(*model, {"blk.0.ffn_up.weight"}, 2, 4.0f, 6);
  extra.tensors[0].base = "blk.9.ffn_up.weight";
  ASSERT_TRUE(WriteLoraGguf(extra, model->config().arch, dir.Path("extra.gguf")).ok());
  expect_error(dir.Path("extra.gguf"), "no base weight");
  // Another architecture.
  ASSERT_TRUE(WriteLoraGguf(RandomAdapter(*model, {"blk.0.ffn_up.weight"}, 2, 4.0f, 6), "qwen2", dir.Path("arch.gguf")).ok());
  expect_error(dir.Path("arch.gguf"), "architecture");
  // Not an adapter: the model itself.
  expect_error(g->name(), "not 'adapter'");
  // lora_a without lora_b.
  {
    GgufWriter w;
    w.SetKv("general.architecture", GgufValue::String("llama"));
    w.SetKv("general.type", GgufValue::String("adapter"));
    w.SetKv("adapter.type", GgufValue::String("lora"));
    const uint64_t dims[2] = {256, 2};
    ASSERT_TRUE(w.AddTensor("blk.0.attn_q.weight.lora_a", GgmlType::kF32, dims, [](std::span<uint8_t> o) {
                   std::fill(o.begin(), o.end(), 0);
                   return OkStatus();
                 }).ok());
    ASSERT_TRUE(w.Write(dir.Path("half.gguf")).ok());
    expect_error(dir.Path("half.gguf"), "no lora_b");
  }
  // PEFT folders: missing config, DoRA, missing weights.
  std::filesystem::create_directories(dir.Path("p1"));
  expect_error(dir.Path("p1"), "no adapter_config.json");
  std::filesystem::create_directories(dir.Path("p2"));
  WriteText(dir.Path("p2/adapter_config.json"), R"({"peft_type": "LORA", "r": 4, "lora_alpha": 8, "use_dora": true})");
  expect_error(dir.Path("p2"), "DoRA");
  std::filesystem::create_directories(dir.Path("p3"));
  WriteText(dir.Path("p3/adapter_config.json"), R"({"peft_type": "LORA", "r": 4, "lora_alpha": 8})");
  expect_error(dir.Path("p3"), "adapter_model.safetensors is missing");
  expect_error(dir.Path("nothing-here"), "no such file");
}

TEST(Lora, PeftConfigParsing) {
  auto c = ParsePeftConfig(R"({"peft_type":"LORA","r":8,"lora_alpha":16,"use_rslora":true,"target_modules":["q_proj","v_proj"],
                              "rank_pattern":{"q_proj":4},"alpha_pattern":{"layers.0.self_attn.v_proj":2}})", "c.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->r, 8);
  EXPECT_TRUE(c->use_rslora);
  EXPECT_EQ(c->target_modules.size(), 2u);
  EXPECT_EQ(c->rank_pattern.size(), 1u);
  for (const char* bad : {"[]", "{", R"({"r": 0, "lora_alpha": 1})", R"({"r": 4})", R"({"r": 4, "lora_alpha": "x"})",
                          R"({"peft_type": "IA3", "r": 4, "lora_alpha": 1})", R"({"r": 4, "lora_alpha": 1, "bias": "all"})",
                          R"({"r": 4, "lora_alpha": 1, "modules_to_save": ["lm_head"]})"}) {
    EXPECT_FALSE(ParsePeftConfig(bad, "c.json").ok()) << bad;
  }
}

}  // namespace
}  // namespace lowbit::train

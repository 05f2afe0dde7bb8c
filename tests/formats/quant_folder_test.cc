// A small GPTQ and AWQ folder written the way the pipeline will write one (config.json with
// quantization_config, quantize_config.json, model.safetensors holding quantized and float
// tensors), read back through LoadQuantConfig + SafetensorsModel: every layer bit-identical.
#include <gtest/gtest.h>

#include <cstring>
#include <map>

#include "lowbit/formats/hf.h"
#include "quant_test_util.h"

namespace lowbit {
namespace {

using testing::LinearSpec;
using testing::RandomLinear;

constexpr char kModelConfig[] = R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
  "hidden_size": 288, "intermediate_size": 768, "num_hidden_layers": 1, "num_attention_heads": 6,
  "vocab_size": 32000, "torch_dtype": "float16"})";

struct Layer {
  std::string prefix;
  LinearSpec spec;
};

std::map<std::string, IntQuantLinear> WriteFolder(const testing::TempDir& dir, const QuantConfig& cfg,
                                                  const std::vector<Layer>& layers) {
  std::mt19937 rng(31);
  std::map<std::string, IntQuantLinear> written;
  SafetensorsWriter w;
  w.SetMetadata("format", "pt");
  for (const Layer& l : layers) {
    IntQuantLinear q = RandomLinear(rng, l.spec);
    Status s = AddQuantizedLinear(w, l.prefix, q, cfg);
    EXPECT_TRUE(s.ok()) << s.message();
    written[l.prefix] = std::move(q);
  }
  // A float tensor beside them (norms and embeddings stay float in these checkpoints).
  EXPECT_TRUE(w.Add("model.norm.weight", StDtype::kF16, {288}, [](std::span<uint8_t> out) {
                 std::memset(out.data(), 0, out.size());
                 return OkStatus();
               }).ok());
  EXPECT_TRUE(w.Write(dir.Path("model.safetensors")).ok());
  auto config = WithQuantizationConfig(kModelConfig, cfg, "config.json");
  EXPECT_TRUE(config.ok());
  testing::WriteFileBytes(dir.Path("config.json"), std::vector<uint8_t>(config->begin(), config->end()));
  const std::string side = cfg.method == QuantMethod::kAwq ? AwqQuantConfigJson(cfg) : GptqQuantizeConfigJson(cfg);
  testing::WriteFileBytes(dir.Path(cfg.method == QuantMethod::kAwq ? "quant_config.json" : "quantize_config.json"),
                          std::vector<uint8_t>(side.begin(), side.end()));
  return written;
}

void ReadBackEveryLayer(const testing::TempDir& dir, const std::map<std::string, IntQuantLinear>& written) {
  auto cfg = LoadQuantConfig(dir.path().string());
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  auto model = SafetensorsModel::Open(dir.path().string());
  ASSERT_TRUE(model.ok()) << model.status().message();
  // The model config still parses (the quantization block does not disturb it).
  ASSERT_TRUE(LoadHfConfig(dir.Path("config.json")).ok());
  for (const auto& [prefix, q] : written) {
    SCOPED_TRACE(prefix);
    auto back = ReadQuantizedLinear(*model, prefix, *cfg, q.rows, q.cols);
    ASSERT_TRUE(back.ok()) << back.status().message();
    testing::ExpectSameLinear(q, *back);
  }
  // The same through the model-agnostic walk (what a dequantize-everything conversion does).
  size_t seen = 0;
  Status s = ForEachQuantizedLinear(*model, *cfg, [&](const std::string& prefix, IntQuantLinear&& q) {
    testing::ExpectSameLinear(written.at(prefix), q);
    ++seen;
    return OkStatus();
  });
  EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(seen, written.size());
}

TEST(QuantFolder, GptqFolderReadsBackBitIdentically) {
  QuantConfig cfg;
  cfg.bits = 4;
  cfg.group_size = 128;
  cfg.desc_act = true;
  cfg.sym = false;
  cfg.model_file_base_name = "model";
  // down_proj at 8 bits through a dynamic override, as GPTQModel mixes bits.
  cfg.dynamic.push_back(*MakeDynamicRule("+:.*down_proj", R"({"bits": 8})", "test"));
  auto spec = [](int bits, int64_t rows, int64_t cols, bool act, bool bias) {
    LinearSpec s;
    s.bits = bits;
    s.rows = rows;
    s.cols = cols;
    s.group_size = std::min<int64_t>(128, cols);
    s.act_order = act;
    s.bias = bias;
    return s;
  };
  for (CheckpointFormat fmt : {CheckpointFormat::kGptq, CheckpointFormat::kGptqV2}) {
    testing::TempDir dir;
    cfg.format = fmt;
    auto written = WriteFolder(dir, cfg,
                               {{"model.layers.0.self_attn.q_proj", spec(4, 288, 288, true, false)},
                                {"model.layers.0.self_attn.o_proj", spec(4, 288, 288, true, true)},
                                {"model.layers.0.mlp.gate_proj", spec(4, 768, 288, false, false)},
                                {"model.layers.0.mlp.down_proj", spec(8, 288, 768, true, false)}});
    ASSERT_EQ(written.size(), 4u);
    ReadBackEveryLayer(dir, written);
  }
}

TEST(QuantFolder, AwqFolderReadsBackBitIdentically) {
  QuantConfig cfg;
  cfg.method = QuantMethod::kAwq;
  cfg.format = CheckpointFormat::kAwqGemm;
  cfg.group_size = 32;
  cfg.sym = false;
  cfg.desc_act = false;
  auto spec = [](int64_t rows, int64_t cols) {
    LinearSpec s;
    s.rows = rows;
    s.cols = cols;
    s.group_size = 32;
    return s;
  };
  testing::TempDir dir;
  auto written = WriteFolder(dir, cfg,
                             {{"model.layers.0.self_attn.k_proj", spec(288, 288)},
                              {"model.layers.0.mlp.up_proj", spec(768, 288)},
                              {"model.layers.0.mlp.down_proj", spec(288, 768)}});
  ReadBackEveryLayer(dir, written);
}

}  // namespace
}  // namespace lowbit

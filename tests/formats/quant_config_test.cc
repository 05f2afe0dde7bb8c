// quantize_config.json / config.json quantization_config / quant_config.json as AutoGPTQ, GPTQModel,
// AutoAWQ and transformers write them: parsed into one struct, rejected by name when the layout is
// another, written back with the fields transformers' GPTQConfig / AwqConfig and vLLM read.
#include "lowbit/formats/quant_config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "test_data.h"

namespace lowbit {
namespace {

QuantConfig Parse(const std::string& json) {
  auto c = ParseQuantConfig(json, "q.json");
  EXPECT_TRUE(c.ok()) << c.status().message();
  return c.ok() ? *c : QuantConfig{};
}

void ExpectError(const std::string& json, std::initializer_list<std::string> fragments) {
  auto c = ParseQuantConfig(json, "q.json");
  ASSERT_FALSE(c.ok()) << "accepted: " << json;
  EXPECT_NE(c.status().message().find("q.json"), std::string::npos) << c.status().message();
  for (const std::string& f : fragments) EXPECT_NE(c.status().message().find(f), std::string::npos) << c.status().message();
}

TEST(QuantConfig, AutoGptqQuantizeConfig) {
  // AutoGPTQ BaseQuantizeConfig.to_dict(), as in TheBloke's checkpoints.
  QuantConfig c = Parse(R"({"bits": 4, "group_size": 128, "damp_percent": 0.1, "desc_act": true,
      "static_groups": false, "sym": true, "true_sequential": true, "model_name_or_path": null,
      "model_file_base_name": "model", "quant_method": "gptq", "checkpoint_format": "gptq"})");
  EXPECT_EQ(c.method, QuantMethod::kGptq);
  EXPECT_EQ(c.format, CheckpointFormat::kGptq);
  EXPECT_EQ(c.bits, 4);
  EXPECT_EQ(c.group_size, 128);
  EXPECT_TRUE(c.desc_act);
  EXPECT_TRUE(c.sym);
  EXPECT_DOUBLE_EQ(c.damp_percent, 0.1);
  EXPECT_EQ(c.model_file_base_name, "model");
  EXPECT_EQ(c.pack_bits, 32);
  EXPECT_EQ(c.v1_zeros, V1Zeros::kPerField);
}

TEST(QuantConfig, OlderAutoGptqWithoutFormatAndWithSynonyms) {
  QuantConfig c = Parse(R"({"W_BIT": 3, "Q_GROUP_SIZE": -1, "desc_act": false})");
  EXPECT_EQ(c.method, QuantMethod::kGptq);
  EXPECT_EQ(c.format, CheckpointFormat::kGptq);
  EXPECT_EQ(c.bits, 3);
  EXPECT_EQ(c.group_size, -1);
  EXPECT_TRUE(c.sym);  // AutoGPTQ and GPTQModel default sym to true
}

TEST(QuantConfig, GptqModelConfig) {
  QuantConfig c = Parse(R"({"bits": 4, "dynamic": {"-:.*mlp\\.gate.*": {}, "+:.*\\.(?:1[0-5])\\..*": {"bits": 8},
      ".*down_proj": {"group_size": 64, "damp_percent": 0.05}}, "group_size": 128, "desc_act": false,
      "sym": false, "lm_head": false, "quant_method": "gptq", "checkpoint_format": "gptq_v2",
      "pack_dtype": "int16", "meta": {"quantizer": ["gptqmodel:2.2.0"], "uri": "https://github.com/modelcloud/gptqmodel",
      "damp_percent": 0.01, "damp_auto_increment": 0.0025, "static_groups": false, "true_sequential": true,
      "mse": 0.0}})");
  EXPECT_EQ(c.format, CheckpointFormat::kGptqV2);
  EXPECT_FALSE(c.sym);
  EXPECT_EQ(c.pack_bits, 16);
  EXPECT_EQ(c.quantizer, std::vector<std::string>{"gptqmodel:2.2.0"});
  EXPECT_EQ(c.v1_zeros, V1Zeros::kGptqModel);
  ASSERT_EQ(c.dynamic.size(), 3u);
  EXPECT_TRUE(c.dynamic[0].skip);  // negative rules first, as GPTQModel orders them
  auto m = [&](const char* name) { return *c.ForModule(name); };
  EXPECT_FALSE(m("model.layers.3.mlp.gate_proj").has_value());
  EXPECT_EQ(m("model.layers.12.self_attn.q_proj")->bits, 8);
  EXPECT_EQ(m("model.layers.12.self_attn.q_proj")->group_size, 128);
  // The first positive match decides: layer 12's down_proj gets 8 bits and keeps group 128.
  EXPECT_EQ(m("model.layers.12.mlp.down_proj")->bits, 8);
  EXPECT_EQ(m("model.layers.12.mlp.down_proj")->group_size, 128);
  EXPECT_EQ(m("model.layers.3.mlp.down_proj")->group_size, 64);
  EXPECT_EQ(m("model.layers.3.mlp.down_proj")->bits, 4);
  EXPECT_EQ(m("model.layers.3.self_attn.q_proj")->bits, 4);
  // re.match anchors at the start only.
  EXPECT_EQ(m("xmodel.layers.3.mlp.down_proj")->group_size, 64);
  EXPECT_FALSE(m("lm_head").has_value());
}

TEST(QuantConfig, ConfigJsonQuantizationConfig) {
  QuantConfig c = Parse(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 288,
      "quantization_config": {"bits": 8, "group_size": 32, "desc_act": false, "sym": true,
      "quant_method": "gptq", "checkpoint_format": "gptq", "lm_head": true}})");
  EXPECT_EQ(c.bits, 8);
  EXPECT_EQ(c.group_size, 32);
  EXPECT_TRUE(c.lm_head);
  EXPECT_TRUE(c.ForModule("lm_head")->has_value());
  auto bad = ParseQuantConfig(R"({"quantization_config": {"bits": 5, "group_size": 32}})", "config.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("config.json: quantization_config: \"bits\" = 5"), std::string::npos)
      << bad.status().message();
}

TEST(QuantConfig, AutoAwqConfigs) {
  // AutoAWQ's legacy quant_config.json (AwqConfig.to_dict) and transformers' form (to_transformers_dict).
  QuantConfig a = Parse(R"({"zero_point": true, "q_group_size": 128, "w_bit": 4, "version": "GEMM",
      "modules_to_not_convert": ["visual"]})");
  EXPECT_EQ(a.method, QuantMethod::kAwq);
  EXPECT_EQ(a.format, CheckpointFormat::kAwqGemm);
  EXPECT_EQ(a.group_size, 128);
  EXPECT_FALSE(a.desc_act);
  EXPECT_EQ(a.modules_to_not_convert, std::vector<std::string>{"visual"});
  EXPECT_FALSE(a.ForModule("model.visual.blocks.0.attn")->has_value());
  EXPECT_TRUE(a.ForModule("model.layers.0.mlp.up_proj")->has_value());
  QuantConfig b = Parse(R"({"quantization_config": {"quant_method": "awq", "zero_point": true, "group_size": 64,
      "bits": 4, "version": "gemm", "modules_to_not_convert": null, "backend": "autoawq", "do_fuse": false}})");
  EXPECT_EQ(b.method, QuantMethod::kAwq);
  EXPECT_EQ(b.group_size, 64);
  // AutoGPTQ's name for an AWQ checkpoint.
  QuantConfig g = Parse(R"({"quant_method": "awq", "checkpoint_format": "gemm", "bits": 4, "group_size": 128})");
  EXPECT_EQ(g.method, QuantMethod::kAwq);
}

TEST(QuantConfig, OtherLayoutsAreRejectedByName) {
  ExpectError(R"({"bits": 4, "group_size": 128, "checkpoint_format": "marlin"})", {"Marlin"});
  ExpectError(R"({"bits": 4, "group_size": 128, "is_marlin_format": true})", {"Marlin"});
  ExpectError(R"({"bits": 4, "group_size": 128, "quant_method": "marlin"})", {"Marlin"});
  ExpectError(R"({"bits": 4, "group_size": 128, "checkpoint_format": "bitblas"})", {"\"bitblas\""});
  ExpectError(R"({"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemv"})", {"\"gemv\"", "GEMM"});
  ExpectError(R"({"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemv_fast"})", {"gemv_fast"});
  ExpectError(R"({"quant_method": "awq", "bits": 4, "group_size": 128, "version": "marlin"})", {"\"marlin\""});
  ExpectError(R"({"quant_method": "awq", "bits": 4, "group_size": 128, "version": "exllama"})", {"exllama"});
  ExpectError(R"({"quant_method": "awq", "bits": 4, "version": "gemm", "backend": "llm-awq"})", {"TinyChat"});
  ExpectError(R"({"quant_method": "awq", "bits": 3, "group_size": 128})", {"AWQ bits = 3", "4-bit values only"});
  ExpectError(R"({"quant_method": "awq", "zero_point": false, "group_size": 128})", {"zero_point = false"});
  ExpectError(R"({"quant_method": "fp8"})", {"quant_method \"fp8\" is not GPTQ or AWQ"});
  ExpectError(R"({"quant_method": "bitsandbytes", "load_in_4bit": true})", {"bitsandbytes"});
}

TEST(QuantConfig, FieldErrors) {
  ExpectError("[1, 2]", {"not a JSON object"});
  ExpectError("{", {"not a JSON object"});
  ExpectError(R"({"group_size": 128})", {"\"bits\" is missing"});
  ExpectError(R"({"bits": 4})", {"\"group_size\" is missing"});
  ExpectError(R"({"bits": "4", "group_size": 128})", {"\"bits\" must be an integer"});
  ExpectError(R"({"bits": 6, "group_size": 128})", {"\"bits\" = 6"});
  ExpectError(R"({"bits": 4, "group_size": 0})", {"\"group_size\" = 0"});
  ExpectError(R"({"bits": 4, "group_size": -2})", {"\"group_size\" = -2"});
  ExpectError(R"({"bits": 4, "group_size": 128, "desc_act": "yes"})", {"\"desc_act\" must be true or false"});
  ExpectError(R"({"bits": 4, "group_size": 128, "sym": 1})", {"\"sym\" must be true or false"});
  ExpectError(R"({"bits": 4, "group_size": 128, "pack_dtype": "uint32"})", {"\"pack_dtype\" = \"uint32\""});
  ExpectError(R"({"bits": 3, "group_size": 128, "pack_dtype": "int64"})", {"3-bit GPTQ packs into int32"});
  ExpectError(R"({"bits": 4, "w_bit": 8, "group_size": 128})", {"\"bits\" is given twice"});
  ExpectError(R"({"bits": 4, "group_size": 128, "meta": []})", {"\"meta\" must be an object"});
  ExpectError(R"({"bits": 4, "group_size": 128, "meta": {"quantizer": 3}})", {"meta.quantizer"});
  ExpectError(R"({"bits": 4, "group_size": 128, "dynamic": []})", {"\"dynamic\" must be an object"});
  ExpectError(R"({"bits": 4, "group_size": 128, "dynamic": {"a": 3}})", {"\"dynamic\".\"a\""});
  ExpectError(R"({"bits": 4, "group_size": 128, "dynamic": {"a": {"bits": 5}}})", {"\"dynamic\".\"a\".\"bits\" = 5"});
  ExpectError(R"({"bits": 4, "group_size": 128, "dynamic": {"a": {"pack_dtype": "int16"}}})", {"cannot honor"});
  ExpectError(R"({"bits": 4, "group_size": 128, "dynamic": {"a": {"format": "gptq_v2"}}})", {"cannot honor"});
  ExpectError(R"({"bits": 4, "group_size": 128, "dynamic": {"+:model.(": {}}})", {"regular expression", "model.("});
  ExpectError(R"({"bits": 4, "group_size": 128, "modules_to_not_convert": "lm_head"})", {"modules_to_not_convert"});
  ExpectError(R"({"bits": 4, "group_size": 128, "modules_to_not_convert": [""]})", {"modules_to_not_convert"});
  ExpectError(R"({"quantization_config": 4})", {"\"quantization_config\" must be an object"});
}

TEST(QuantConfig, WritesWhatAutoGptqTransformersAndVllmRead) {
  QuantConfig c;
  c.bits = 4;
  c.group_size = 128;
  c.desc_act = true;
  c.sym = false;
  c.model_file_base_name = "model";
  ASSERT_TRUE(CheckWritableConfig(c).ok());
  const std::string text = GptqQuantizeConfigJson(c);
  EXPECT_EQ(text,
            "{\n"
            "  \"bits\": 4,\n"
            "  \"group_size\": 128,\n"
            "  \"damp_percent\": 0.01,\n"
            "  \"desc_act\": true,\n"
            "  \"static_groups\": false,\n"
            "  \"sym\": false,\n"
            "  \"true_sequential\": true,\n"
            "  \"model_name_or_path\": null,\n"
            "  \"model_file_base_name\": \"model\",\n"
            "  \"quant_method\": \"gptq\",\n"
            "  \"checkpoint_format\": \"gptq\",\n"
            "  \"pack_dtype\": \"int32\",\n"
            "  \"lm_head\": false,\n"
            "  \"meta\": {\n"
            "    \"quantizer\": [\n"
            "      \"lowbit:0.1.0\"\n"
            "    ]\n"
            "  }\n"
            "}\n");
  QuantConfig back = Parse(text);
  EXPECT_EQ(back.bits, 4);
  EXPECT_EQ(back.group_size, 128);
  EXPECT_TRUE(back.desc_act);
  EXPECT_FALSE(back.sym);
  EXPECT_EQ(back.v1_zeros, V1Zeros::kGptqModel);  // lowbit writes zero 0 with GPTQModel's borrow
  // vLLM's GPTQConfig.from_config needs bits, group_size, desc_act (and gptq_marlin sym).
  auto j = nlohmann::json::parse(QuantizationConfigJson(c));
  for (const char* key : {"bits", "group_size", "desc_act", "sym", "quant_method", "checkpoint_format"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
}

TEST(QuantConfig, WritesAwqAsAutoAwqDoes) {
  QuantConfig c;
  c.method = QuantMethod::kAwq;
  c.format = CheckpointFormat::kAwqGemm;
  c.group_size = 128;
  c.sym = false;
  ASSERT_TRUE(CheckWritableConfig(c).ok());
  EXPECT_EQ(QuantizationConfigJson(c),
            "{\n  \"quant_method\": \"awq\",\n  \"zero_point\": true,\n  \"group_size\": 128,\n  \"bits\": 4,\n"
            "  \"version\": \"gemm\",\n  \"modules_to_not_convert\": null\n}");
  EXPECT_EQ(AwqQuantConfigJson(c),
            "{\n    \"zero_point\": true,\n    \"q_group_size\": 128,\n    \"w_bit\": 4,\n    \"version\": \"GEMM\",\n"
            "    \"modules_to_not_convert\": null\n}\n");
  EXPECT_EQ(Parse(AwqQuantConfigJson(c)).method, QuantMethod::kAwq);
  EXPECT_EQ(Parse(QuantizationConfigJson(c)).group_size, 128);
  c.bits = 3;
  EXPECT_FALSE(CheckWritableConfig(c).ok());
}

TEST(QuantConfig, WithQuantizationConfigKeepsTheModelConfig) {
  QuantConfig c;
  c.format = CheckpointFormat::kGptqV2;
  auto out = WithQuantizationConfig(R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 32000,
      "quantization_config": {"old": 1}, "torch_dtype": "float16"})", c, "config.json");
  ASSERT_TRUE(out.ok());
  auto j = nlohmann::ordered_json::parse(*out);
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"architectures", "vocab_size", "quantization_config", "torch_dtype"}));
  EXPECT_EQ(j["quantization_config"]["checkpoint_format"], "gptq_v2");
  EXPECT_FALSE(j["quantization_config"].contains("old"));
  EXPECT_EQ(Parse(*out).format, CheckpointFormat::kGptqV2);
  EXPECT_FALSE(WithQuantizationConfig("[]", c, "config.json").ok());
}

TEST(QuantConfig, DynamicRulesRoundTrip) {
  QuantConfig c = Parse(R"({"bits": 4, "group_size": 128, "desc_act": false,
      "dynamic": {"-:.*lm_head": {}, ".*down_proj": {"bits": 8, "mse": 2.4}}})");
  QuantConfig back = Parse(GptqQuantizeConfigJson(c));
  ASSERT_EQ(back.dynamic.size(), 2u);
  EXPECT_EQ(back.dynamic[0].pattern, "-:.*lm_head");
  EXPECT_EQ(back.dynamic[1].pattern, ".*down_proj");
  EXPECT_EQ(back.dynamic[1].bits, 8);
  EXPECT_EQ((*back.ForModule("a.down_proj"))->bits, 8);
  // Python's re.match: anchored at the start, not at the end.
  auto rule = MakeDynamicRule("layers\\.0", "{\"bits\": 2}", "test");
  ASSERT_TRUE(rule.ok()) << rule.status().message();
  QuantConfig d;
  d.dynamic.push_back(*rule);
  EXPECT_EQ((*d.ForModule("layers.0.mlp"))->bits, 2);
  EXPECT_EQ((*d.ForModule("model.layers.0.mlp"))->bits, 4);
}

TEST(QuantConfig, LoadsAFolderWithPrecedenceAndAgreement) {
  testing::TempDir dir;
  auto write = [&](const std::string& name, const std::string& text) {
    testing::WriteFileBytes(dir.Path(name), std::vector<uint8_t>(text.begin(), text.end()));
  };
  EXPECT_FALSE(LoadQuantConfig(dir.path().string()).ok());
  write("config.json", "{\"architectures\": ");
  write("quantize_config.json", R"({"bits": 4, "group_size": 64, "desc_act": false})");
  auto broken = LoadQuantConfig(dir.path().string());
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.status().message().find("config.json: not a JSON object"), std::string::npos);
  std::filesystem::remove(dir.Path("quantize_config.json"));
  write("config.json", R"({"architectures": ["LlamaForCausalLM"]})");
  auto none = LoadQuantConfig(dir.path().string());
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("not a GPTQ or AWQ checkpoint"), std::string::npos);
  write("quantize_config.json", R"({"bits": 4, "group_size": 64, "desc_act": false})");
  auto q = LoadQuantConfig(dir.path().string());
  ASSERT_TRUE(q.ok()) << q.status().message();
  EXPECT_EQ(q->group_size, 64);
  write("config.json", R"({"quantization_config": {"bits": 4, "group_size": 64, "desc_act": false, "quant_method": "gptq"}})");
  ASSERT_TRUE(LoadQuantConfig(dir.path().string()).ok());
  write("config.json", R"({"quantization_config": {"bits": 8, "group_size": 64, "quant_method": "gptq"}})");
  auto differ = LoadQuantConfig(dir.path().string());
  ASSERT_FALSE(differ.ok());
  EXPECT_NE(differ.status().message().find("\"bits\" is 8 in config.json's quantization_config but 4 in "
                                           "quantize_config.json"), std::string::npos)
      << differ.status().message();
  std::filesystem::remove(dir.Path("quantize_config.json"));
  write("quant_config.json", R"({"zero_point": true, "q_group_size": 128, "w_bit": 4, "version": "GEMM"})");
  write("config.json", R"({"quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemm"}})");
  auto awq = LoadQuantConfig(dir.path().string());
  ASSERT_TRUE(awq.ok()) << awq.status().message();
  EXPECT_EQ(awq->method, QuantMethod::kAwq);
}

}  // namespace
}  // namespace lowbit

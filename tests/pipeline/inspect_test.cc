#include <gtest/gtest.h>

#include "lowbit/pipeline/inspect.h"
#include "test_data.h"

namespace lowbit {
namespace {

TEST(Inspect, GgufReportAndJson) {
  LOWBIT_REQUIRE_SHARED();
  auto r = Inspect(testing::SharedPath("models/stories5M/llamacpp/stories5M-q4_k_m.gguf"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->format, "gguf v3");
  EXPECT_EQ(r->tensors.size(), 57u);
  EXPECT_EQ(r->total_elements(), 4984064u);
  EXPECT_LT(r->total_bytes(), r->file_size);
  EXPECT_GT(r->average_bits_per_weight(), 4.5);
  EXPECT_LT(r->average_bits_per_weight(), 5.0);
  nlohmann::json j = r->ToJson();
  EXPECT_EQ(j["tensor_count"], 57);
  EXPECT_EQ(j["file_size"], 2981824);
  bool found = false;
  for (const auto& m : j["metadata"]) {
    if (m["key"] == "tokenizer.ggml.tokens") {
      found = true;
      EXPECT_EQ(m["count"], 512);
      EXPECT_EQ(m["type"], "array[string]");
    }
  }
  EXPECT_TRUE(found);
  const std::string text = r->ToText();
  EXPECT_NE(text.find("blk.0.ffn_down.weight"), std::string::npos);
  EXPECT_NE(text.find("Q6_K"), std::string::npos);
}

TEST(Inspect, SafetensorsAndHuggingFaceFolder) {
  LOWBIT_REQUIRE_SHARED();
  auto f = Inspect(testing::SharedPath("models/stories260K/hf-bf16/model.safetensors"));
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->format, "safetensors");
  EXPECT_EQ(f->total_elements(), 260032u);
  EXPECT_DOUBLE_EQ(f->average_bits_per_weight(), 16.0);
  auto d = Inspect(testing::SharedPath("models/stories260K/hf-f32"));
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->format, "huggingface");
  EXPECT_EQ(d->tensors.size(), 47u);
  bool has_config = false;
  for (const auto& m : d->metadata) has_config |= m.key == "config.hidden_size";
  EXPECT_TRUE(has_config);
  EXPECT_FALSE(Inspect(testing::SharedPath("models/stories260K/tok512.bin")).ok());
}

}  // namespace
}  // namespace lowbit

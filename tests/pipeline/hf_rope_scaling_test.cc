// A Hugging Face folder whose config.json has Llama 3.1's rope_scaling ("llama3") converts as
// llama.cpp's converter does: the smoothed frequencies become rope_freqs.weight, which the model then
// divides its RoPE angles by; "linear" becomes rope.scaling.type / factor.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "lowbit/formats/hf.h"
#include "lowbit/model/llama.h"
#include "lowbit/pipeline/convert.h"
#include "lowbit/pipeline/llama_metadata.h"
#include "test_data.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;

// stories260K's HF folder with config.json's rope_scaling set to `scaling`, converted.
Expected<GgufFile> ConvertWithScaling(const testing::TempDir& dir, const nlohmann::json& scaling) {
  const fs::path src = testing::SharedPath("models/stories260K/hf-f32"), hf = dir.path() / "hf";
  fs::create_directories(hf);
  for (const auto& e : fs::directory_iterator(src)) fs::copy_file(e.path(), hf / e.path().filename());
  LOWBIT_ASSIGN_OR_RETURN(std::string text, ReadTextFile((hf / "config.json").string()));
  nlohmann::json j = nlohmann::json::parse(text);
  j["rope_scaling"] = scaling;
  std::ofstream((hf / "config.json").string()) << j.dump();
  ConvertOptions o;
  o.input = hf.string();
  o.output = dir.Path("out.gguf");
  LOWBIT_RETURN_IF_ERROR(Convert(o));
  return GgufFile::Open(o.output);
}

TEST(HfRopeScaling, Llama3BecomesRopeFreqs) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  auto g = ConvertWithScaling(dir, {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                                    {"original_max_position_embeddings", 64}});
  ASSERT_TRUE(g.ok()) << g.status().message();
  const GgufTensorInfo* t = g->FindTensor("rope_freqs.weight");
  ASSERT_NE(t, nullptr);
  auto m = LlamaModel::Load(*g);
  ASSERT_TRUE(m.ok()) << m.status().message();
  const int64_t hd = m->config().head_dim;
  ASSERT_EQ(t->dims[0], static_cast<uint64_t>(hd / 2));
  const std::vector<float> want = Llama3RopeFactors(m->config().rope_freq_base, hd, 8.0f, 1.0f, 4.0f, 64.0f);
  ASSERT_NE(m->rope_freqs, nullptr);
  bool scaled = false;
  for (int64_t i = 0; i < hd / 2; ++i) {
    EXPECT_EQ(m->rope_freqs[i], want[i]) << i;
    scaled = scaled || want[i] != 1.0f;
  }
  EXPECT_TRUE(scaled);  // this short original context scales the low frequencies
  EXPECT_FALSE(m->PlainLlama());
}

TEST(HfRopeScaling, LinearBecomesTheScalingKeys) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  auto g = ConvertWithScaling(dir, {{"type", "linear"}, {"factor", 4.0}});
  ASSERT_TRUE(g.ok()) << g.status().message();
  auto m = LlamaModel::Load(*g);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->config().rope_freq_scale, 0.25f);
}

TEST(HfRopeScaling, YarnIsRefusedWithItsName) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  auto g = ConvertWithScaling(dir, {{"type", "yarn"}, {"factor", 4.0}});
  ASSERT_FALSE(g.ok());
  EXPECT_NE(std::string(g.status().message()).find("yarn"), std::string::npos) << g.status().message();
}

}  // namespace
}  // namespace lowbit

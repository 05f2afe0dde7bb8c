#include <gtest/gtest.h>

#include <cstring>

#include "lowbit/formats/hf.h"
#include "lowbit/formats/llama2c.h"
#include "lowbit/formats/sentencepiece_model.h"
#include "test_data.h"

namespace lowbit {
namespace {

TEST(Llama2c, ReadsSharedAndUnsharedClassifiers) {
  LOWBIT_REQUIRE_SHARED();
  auto a = Llama2cCheckpoint::Open(testing::SharedPath("models/stories260K/stories260K.bin"));
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ(a->config().dim, 64);
  EXPECT_EQ(a->config().hidden_dim, 172);
  EXPECT_EQ(a->config().n_kv_heads, 4);
  EXPECT_TRUE(a->config().shared_classifier);
  EXPECT_EQ(a->Weight(Llama2cWeight::kClassifier).data(), a->Weight(Llama2cWeight::kTokenEmbedding).data());
  EXPECT_EQ(a->Weight(Llama2cWeight::kWk, 4).size(), 32u * 64 * 4);
  auto b = Llama2cCheckpoint::Open(testing::SharedPath("models/stories5M/stories5M.bin"));
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_FALSE(b->config().shared_classifier);
  EXPECT_EQ(b->config().vocab_size, 512);
  EXPECT_NE(b->Weight(Llama2cWeight::kClassifier).data(), b->Weight(Llama2cWeight::kTokenEmbedding).data());
  // The classifier is the last 512*256 floats of the file.
  auto bytes = testing::ReadFileBytes(testing::SharedPath("models/stories5M/stories5M.bin"));
  EXPECT_EQ(std::memcmp(b->Weight(Llama2cWeight::kClassifier).data(), bytes.data() + bytes.size() - 512 * 256 * 4, 16), 0);
}

TEST(Llama2c, RejectsBadCheckpoints) {
  LOWBIT_REQUIRE_SHARED();
  auto bytes = testing::ReadFileBytes(testing::SharedPath("models/stories260K/stories260K.bin"));
  std::vector<uint8_t> cut(bytes.begin(), bytes.end() - 4);
  auto r = Llama2cCheckpoint::Parse(cut, "c.bin");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("has 1056540 bytes"), std::string::npos) << r.status().message();
  auto h = bytes;
  int32_t bad = 7;  // n_heads 7 does not divide dim 64
  std::memcpy(h.data() + 12, &bad, 4);
  r = Llama2cCheckpoint::Parse(h, "c.bin");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not a multiple of n_heads"), std::string::npos);
  int32_t neg = -3;
  h = bytes;
  std::memcpy(h.data(), &neg, 4);
  EXPECT_FALSE(Llama2cCheckpoint::Parse(h, "c.bin").ok());
  EXPECT_FALSE(Llama2cCheckpoint::Parse(std::vector<uint8_t>(10), "c.bin").ok());
}

TEST(Llama2c, TokenizerAsLlamaCppConvertsIt) {
  LOWBIT_REQUIRE_SHARED();
  auto v = LoadLlama2cTokenizer(testing::SharedPath("models/stories260K/tok512.bin"), 512);
  ASSERT_TRUE(v.ok()) << v.status().message();
  ASSERT_EQ(v->tokens.size(), 512u);
  EXPECT_EQ(v->tokens[1], "<s>");
  EXPECT_EQ(v->token_types[0], static_cast<int32_t>(TokenType::kUnknown));
  EXPECT_EQ(v->token_types[3], static_cast<int32_t>(TokenType::kByte));
  EXPECT_EQ(v->tokens[259], "\xe2\x96\x81t");  // " t" with the space escaped
  EXPECT_EQ(v->scores[260], -1.0f);
  auto bytes = testing::ReadFileBytes(testing::SharedPath("models/stories260K/tok512.bin"));
  std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + 3000);
  EXPECT_FALSE(ParseLlama2cTokenizer(cut, 512, "t.bin").ok());
}

TEST(SentencePiece, ModelMatchesLlama2cTokenizer) {
  LOWBIT_REQUIRE_SHARED();
  auto sp = LoadSentencePieceModel(testing::SharedPath("models/stories260K/tok512.model"));
  ASSERT_TRUE(sp.ok()) << sp.status().message();
  auto bin = LoadLlama2cTokenizer(testing::SharedPath("models/stories260K/tok512.bin"), 512);
  ASSERT_TRUE(bin.ok());
  ASSERT_EQ(sp->tokens.size(), 512u);
  EXPECT_EQ(sp->tokens, bin->tokens);
  EXPECT_EQ(sp->token_types, bin->token_types);
  for (size_t i = 0; i < 512; ++i) EXPECT_EQ(sp->scores[i], bin->scores[i]) << i;
  EXPECT_EQ(sp->bos_id, 1);
  EXPECT_EQ(sp->add_space_prefix, 1);
  auto big = LoadSentencePieceModel(testing::SharedPath("models/llama2c-tokenizer/tokenizer.model"));
  ASSERT_TRUE(big.ok()) << big.status().message();
  EXPECT_EQ(big->tokens.size(), 32000u);
  auto bytes = testing::ReadFileBytes(testing::SharedPath("models/stories260K/tok512.model"));
  for (size_t n = 1; n < bytes.size(); n += 13) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<long>(n));
    (void)ParseSentencePieceModel(cut, "t.model");  // must not crash; may parse a prefix
  }
}

TEST(HfFiles, ConfigAndTokenizerJson) {
  LOWBIT_REQUIRE_SHARED();
  auto c = LoadHfConfig(testing::SharedPath("models/stories5M/hf-f32/config.json"));
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->hidden_size, 256);
  EXPECT_EQ(c->num_key_value_heads, 4);
  EXPECT_EQ(c->head_dim, 32);
  EXPECT_FALSE(c->tie_word_embeddings);
  auto tj = LoadHfTokenizerJson(testing::SharedPath("models/stories260K/hf-f32/tokenizer.json"));
  ASSERT_TRUE(tj.ok()) << tj.status().message();
  auto sp = LoadSentencePieceModel(testing::SharedPath("models/stories260K/tok512.model"));
  ASSERT_EQ(tj->tokens, sp->tokens);
  EXPECT_EQ(tj->token_types, sp->token_types);
  EXPECT_EQ(tj->model, "llama");
  // Scores from merge ranks order the merged pieces as the SentencePiece scores do.
  for (size_t i = 260; i < 512; ++i) EXPECT_LE(tj->scores[i], tj->scores[259]) << i;

  auto bad = ParseHfConfig(R"({"architectures":["GPT2LMHeadModel"],"model_type":"gpt2"})", "config.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("GPT2LMHeadModel"), std::string::npos);
  bad = ParseHfConfig(R"({"model_type":"llama","hidden_size":"64"})", "config.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("hidden_size"), std::string::npos);
  bad = ParseHfConfig(R"({"model_type":"llama","hidden_size":64,"intermediate_size":1,"num_hidden_layers":1,)"
                      R"("num_attention_heads":6,"vocab_size":5})", "config.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("not a multiple"), std::string::npos);
}

}  // namespace
}  // namespace lowbit

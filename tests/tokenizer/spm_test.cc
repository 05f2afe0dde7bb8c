// SentencePiece-style tokenizer: the llama2.c rule for the tok512 vocabulary and special tokens in
// text (llama.cpp's test vectors for every vocabulary are in vocab_vectors_test.cc).
#include <gtest/gtest.h>

#include "lowbit/formats/gguf_vocab.h"
#include "lowbit/formats/gguf_reader.h"
#include "lowbit/tokenizer/spm.h"
#include "lowbit/tokenizer/tokenizer.h"
#include "test_data.h"

namespace lowbit {
namespace {

TEST(SpmTokenizer, Tok512MatchesTheLlama2cRule) {
  LOWBIT_REQUIRE_SHARED();
  auto g = GgufFile::Open(testing::SharedPath("models/stories260K/stories260K-f32.gguf"));
  ASSERT_TRUE(g.ok());
  auto vocab = VocabFromGguf(*g);
  ASSERT_TRUE(vocab.ok()) << vocab.status().message();
  SpmTokenizer tok(*vocab);
  EXPECT_EQ(tok.Encode("Once upon a time"), (std::vector<int32_t>{403, 407, 261, 378}));
  std::string text;
  for (int32_t id : tok.Encode("Lily and Tom went to the park.")) text += tok.Decode(id);
  EXPECT_EQ(text, " Lily and Tom went to the park.");
}

}  // namespace
}  // namespace lowbit

namespace lowbit {
namespace {

// Special tokens written in the text become their tokens (as a chat template renders them), with
// llama.cpp's leading space before each text fragment after one, and one BOS.
TEST(EncodeSpecial, ControlTokensInTextAsLlamaCppParsesThem) {
  LOWBIT_REQUIRE_SHARED();
  auto g = GgufFile::Open(testing::SharedPath("models/stories5M/stories5M-f32.gguf"));
  ASSERT_TRUE(g.ok());
  auto v = VocabFromGguf(*g);
  ASSERT_TRUE(v.ok());
  auto tok = Tokenizer::Create(*v);
  ASSERT_TRUE(tok.ok());
  const auto ids = (*tok)->EncodeSpecial("<s>Hi there</s><s>Bye");
  std::vector<int32_t> want = {1};
  for (int32_t t : (*tok)->Encode("Hi there")) want.push_back(t);
  want.push_back(2);
  want.push_back(1);
  for (int32_t t : (*tok)->Encode("Bye")) want.push_back(t);
  EXPECT_EQ(ids, want);
  // No special token in the text: the usual encoding, BOS first (once).
  EXPECT_EQ((*tok)->EncodeSpecial("Once upon a time"), (*tok)->EncodeWithBos("Once upon a time"));
  EXPECT_EQ((*tok)->EncodeSpecial("Once", false), (*tok)->Encode("Once"));
}

}  // namespace
}  // namespace lowbit

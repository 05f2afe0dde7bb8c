// Byte-level BPE: the tokenizer entry point and the pre-tokenizer splits (llama.cpp's test vectors for
// every vocabulary are in vocab_vectors_test.cc).
#include <gtest/gtest.h>

#include "lowbit/formats/gguf_vocab.h"
#include "lowbit/tokenizer/bpe.h"
#include "lowbit/tokenizer/tokenizer.h"
#include "test_data.h"

namespace lowbit {
namespace {

TEST(Tokenizer, CreatePicksTheAlgorithmAndAddsBos) {
  LOWBIT_REQUIRE_SHARED();
  auto g = GgufFile::Open(testing::SharedPath("vocab/ggml-vocab-gpt-2.gguf"));
  ASSERT_TRUE(g.ok());
  auto v = VocabFromGguf(*g);
  ASSERT_TRUE(v.ok());
  auto t = Tokenizer::Create(*v);
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ((*t)->Encode("Hello world"), (std::vector<int32_t>{15496, 995}));
  auto spm = GgufFile::Open(testing::SharedPath("models/stories260K/stories260K-f32.gguf"));
  auto sv = VocabFromGguf(*spm);
  auto st = Tokenizer::Create(*sv);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ((*st)->EncodeWithBos("Once upon a time"), (std::vector<int32_t>{1, 403, 407, 261, 378}));
  Vocab bert = *sv;
  bert.model = "bert";
  auto bad = Tokenizer::Create(bert);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'bert'"), std::string::npos);
}

}  // namespace
}  // namespace lowbit

namespace lowbit {
namespace {

// The splits of the llama-bpe (Llama 3) and qwen2 pre-tokenizers, which follow from the expressions llama.cpp and the models'
// tokenizer.json use (contractions in any case, a letter run may take one leading non-letter, digits
// in runs of at most 3 for llama-bpe and one by one for qwen2, newlines kept with the preceding
// punctuation or as their own piece). gpt-2 is beside them to show the splits differ.
std::vector<std::string> Split(const std::string& pre, const std::string& text) {
  Vocab v;
  v.model = "gpt2";
  v.pre = pre;
  auto t = BpeTokenizer::Create(v);
  EXPECT_TRUE(t.ok()) << t.status().message();
  return t.ok() ? t->PreTokenize(text) : std::vector<std::string>{};
}

using Pieces = std::vector<std::string>;

TEST(BpePreTokenizer, LlamaBpeSplits) {
  EXPECT_EQ(Split("llama-bpe", "Hello world"), (Pieces{"Hello", " world"}));
  EXPECT_EQ(Split("llama-bpe", "12345678"), (Pieces{"123", "456", "78"}));
  EXPECT_EQ(Split("llama-bpe", "I'M here, you'Re"), (Pieces{"I", "'M", " here", ",", " you", "'Re"}));
  EXPECT_EQ(Split("llama-bpe", "hello\n\nworld"), (Pieces{"hello", "\n\n", "world"}));
  EXPECT_EQ(Split("llama-bpe", "a  b"), (Pieces{"a", " ", " b"}));
  EXPECT_EQ(Split("llama-bpe", "wow!!!\nok"), (Pieces{"wow", "!!!\n", "ok"}));
  EXPECT_EQ(Split("llama-bpe", "$100 (hello)"), (Pieces{"$", "100", " (", "hello", ")"}));
  EXPECT_EQ(Split("llama-bpe", "f(x)"), (Pieces{"f", "(x", ")"}));
  EXPECT_EQ(Split("llama-bpe", "  lead end   "), (Pieces{" ", " lead", " end", "   "}));
  EXPECT_EQ(Split("llama-bpe", "привет мир 你好"), (Pieces{"привет", " мир", " 你好"}));
  EXPECT_EQ(Split("llama3", "x1234"), (Pieces{"x", "123", "4"}));  // an alias, same expression
}

TEST(BpePreTokenizer, Qwen2SplitsDigitsOneByOne) {
  EXPECT_EQ(Split("qwen2", "12345678"), (Pieces{"1", "2", "3", "4", "5", "6", "7", "8"}));
  EXPECT_EQ(Split("qwen2", "2024年 I'M"), (Pieces{"2", "0", "2", "4", "年", " I", "'M"}));
  EXPECT_EQ(Split("qwen2", "$100 (hello)\n"), (Pieces{"$", "1", "0", "0", " (", "hello", ")\n"}));
  EXPECT_EQ(Split("qwen2", "f(x)"), (Pieces{"f", "(x", ")"}));
}

TEST(BpePreTokenizer, Gpt2SplitsDifferently) {
  EXPECT_EQ(Split("gpt-2", "12345678"), (Pieces{"12345678"}));
  EXPECT_EQ(Split("gpt-2", "I'M (hello)"), (Pieces{"I", "'", "M", " (", "hello", ")"}));
  EXPECT_EQ(Split("gpt-2", "f(x)"), (Pieces{"f", "(", "x", ")"}));
}

}  // namespace
}  // namespace lowbit

// SentencePiece-style tokenizer against llama.cpp's test vectors (../shared/vocab: .inp strings and
// .out ids; no BOS, specials not parsed) and the llama2.c rule for the tok512 vocabulary.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "lowbit/formats/gguf_vocab.h"
#include "lowbit/formats/gguf_reader.h"
#include "lowbit/tokenizer/spm.h"
#include "lowbit/tokenizer/tokenizer.h"
#include "test_data.h"

namespace lowbit {
namespace {

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The .inp strings (each ends with "\n__ggml_vocab_test__\n") and the .out id lines.
void LoadVectors(const std::string& base, std::vector<std::string>* inputs, std::vector<std::vector<int32_t>>* outputs) {
  const std::string inp = ReadText(base + ".inp"), sep = "\n__ggml_vocab_test__\n";
  for (size_t pos = 0; pos < inp.size();) {
    const size_t end = inp.find(sep, pos);
    if (end == std::string::npos) break;
    inputs->push_back(inp.substr(pos, end - pos));
    pos = end + sep.size();
  }
  std::istringstream out(ReadText(base + ".out"));
  std::string line;
  while (std::getline(out, line)) {
    std::istringstream ids(line);
    std::vector<int32_t> v;
    int32_t id;
    while (ids >> id) v.push_back(id);
    outputs->push_back(v);
  }
}

TEST(SpmTokenizer, LlamaCppTestVectors) {
  LOWBIT_REQUIRE_SHARED();
  for (const char* name : {"ggml-vocab-llama-spm.gguf", "ggml-vocab-phi-3.gguf"}) {
    SCOPED_TRACE(name);
    const std::string path = testing::SharedPath(std::string("vocab/") + name);
    auto g = GgufFile::Open(path);
    ASSERT_TRUE(g.ok()) << g.status().message();
    auto vocab = VocabFromGguf(*g);
    ASSERT_TRUE(vocab.ok()) << vocab.status().message();
    SpmTokenizer tok(*vocab);
    std::vector<std::string> inputs;
    std::vector<std::vector<int32_t>> outputs;
    LoadVectors(path, &inputs, &outputs);
    ASSERT_EQ(inputs.size(), 46u);
    ASSERT_GE(outputs.size(), inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      EXPECT_EQ(tok.Encode(inputs[i]), outputs[i]) << "input " << i << ": '" << inputs[i] << "'";
    }
  }
}

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

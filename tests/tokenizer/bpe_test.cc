// Byte-level BPE against llama.cpp's test vectors for the GPT-2 vocabulary (../shared/vocab).
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "lowbit/formats/gguf_vocab.h"
#include "lowbit/tokenizer/bpe.h"
#include "test_data.h"

namespace lowbit {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(BpeTokenizer, Gpt2TestVectors) {
  LOWBIT_REQUIRE_SHARED();
  const std::string path = testing::SharedPath("vocab/ggml-vocab-gpt-2.gguf");
  auto g = GgufFile::Open(path);
  ASSERT_TRUE(g.ok()) << g.status().message();
  auto vocab = VocabFromGguf(*g);
  ASSERT_TRUE(vocab.ok()) << vocab.status().message();
  EXPECT_EQ(vocab->model, "gpt2");
  auto tok = BpeTokenizer::Create(*vocab);
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  const std::string inp = ReadAll(path + ".inp"), sep = "\n__ggml_vocab_test__\n";
  std::istringstream out(ReadAll(path + ".out"));
  size_t pos = 0, n = 0;
  std::string line;
  while (pos < inp.size() && std::getline(out, line)) {
    const size_t end = inp.find(sep, pos);
    ASSERT_NE(end, std::string::npos);
    const std::string text = inp.substr(pos, end - pos);
    pos = end + sep.size();
    std::istringstream ids(line);
    std::vector<int32_t> want;
    int32_t id;
    while (ids >> id) want.push_back(id);
    const std::vector<int32_t> got = tok->Encode(text);
    EXPECT_EQ(got, want) << "input " << n << ": '" << text << "'";
    std::string back;
    for (int32_t t : got) back += tok->Decode(t);
    EXPECT_EQ(back, text) << "decode of input " << n;
    ++n;
  }
  EXPECT_EQ(n, 46u);
}

}  // namespace
}  // namespace lowbit

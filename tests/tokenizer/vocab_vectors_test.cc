// Every tokenizer test vector llama.cpp keeps in its models/ folder, for every vocabulary we have:
// the .inp strings encoded with no BOS/EOS and special-token text not parsed (llama.cpp's
// tests/test-tokenizer-0.cpp: add_special=false, parse_special=false) must give exactly the token ids
// of the .out line, and decoding the ids must give the text back.
//
// Two sets of vectors: ../shared/vocab (llama.cpp build 4748) and tests/data/vocab (the llama.cpp
// release in /work/llama.cpp, commit de3ff81, whose inputs differ in one string and add gemma-4's and
// qwen35's own). Vocabulary files: ../shared/vocab, and tests/data/vocab for the three shared lacks
// (llama-bpe, qwen2, gemma-4). tests/data/vocab/NOTICE.md names the source and carries the MIT notice.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "lowbit/formats/gguf_reader.h"
#include "lowbit/formats/gguf_vocab.h"
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

std::string DataPath(const std::string& name) {
  return (std::filesystem::path(LOWBIT_SOURCE_DIR) / "tests" / "data" / "vocab" / name).string();
}

struct Vectors {
  std::vector<std::string> inputs;
  std::vector<std::vector<int32_t>> outputs;
};

// llama.cpp's read_tests: strings separated by "\n__ggml_vocab_test__\n" (the last one may lack it),
// one line of ids per string.
Vectors ReadVectors(const std::string& base) {
  Vectors v;
  const std::string inp = ReadText(base + ".inp"), sep = "\n__ggml_vocab_test__\n";
  for (size_t pos = 0; pos < inp.size();) {
    const size_t end = inp.find(sep, pos);
    if (end == std::string::npos) {
      v.inputs.push_back(inp.substr(pos));
      break;
    }
    v.inputs.push_back(inp.substr(pos, end - pos));
    pos = end + sep.size();
  }
  std::istringstream out(ReadText(base + ".out"));
  for (std::string line; std::getline(out, line);) {
    std::istringstream ids(line);
    std::vector<int32_t> want;
    for (int32_t id; ids >> id;) want.push_back(id);
    v.outputs.push_back(want);
  }
  return v;
}

enum class Where { kShared, kData };

struct VectorCase {
  const char* vectors;  // ggml-vocab-<vectors>.gguf.inp/.out
  Where vectors_at;
  const char* vocab;  // ggml-vocab-<vocab>.gguf
  Where vocab_at;
  const char* model;  // tokenizer.ggml.model the file must have
  const char* pre;    // tokenizer.ggml.pre the file must have
  const char* use_pre;  // nullptr, or the pre-tokenizer to run instead (see qwen35)
  size_t count;         // number of vectors
};

void PrintTo(const VectorCase& c, std::ostream* os) { *os << c.vectors << " vectors on the " << c.vocab << " vocabulary"; }

std::string PathOf(Where at, const std::string& file) {
  return at == Where::kShared ? testing::SharedPath("vocab/" + file) : DataPath(file);
}

class VocabVectors : public ::testing::TestWithParam<VectorCase> {};

TEST_P(VocabVectors, EncodeAsLlamaCppAndDecodeBack) {
  const VectorCase& c = GetParam();
  if (c.vocab_at == Where::kShared || c.vectors_at == Where::kShared) LOWBIT_REQUIRE_SHARED();
  const std::string vocab_path = PathOf(c.vocab_at, std::string("ggml-vocab-") + c.vocab + ".gguf");
  auto g = GgufFile::Open(vocab_path);
  ASSERT_TRUE(g.ok()) << g.status().message();
  auto vocab = VocabFromGguf(*g);
  ASSERT_TRUE(vocab.ok()) << vocab.status().message();
  EXPECT_EQ(vocab->model, c.model);
  EXPECT_EQ(vocab->pre, c.pre);
  if (c.use_pre != nullptr) vocab->pre = c.use_pre;
  auto tok = Tokenizer::Create(*vocab);
  ASSERT_TRUE(tok.ok()) << tok.status().message();

  const Vectors v = ReadVectors(PathOf(c.vectors_at, std::string("ggml-vocab-") + c.vectors + ".gguf"));
  ASSERT_EQ(v.inputs.size(), c.count);
  ASSERT_EQ(v.outputs.size(), v.inputs.size());
  // SentencePiece vocabularies that add a leading space give it back on decoding.
  const bool space_prefix = vocab->model == "llama" && vocab->add_space_prefix != 0;
  size_t passed = 0;
  for (size_t i = 0; i < v.inputs.size(); ++i) {
    const std::string& text = v.inputs[i];
    const std::vector<int32_t> got = (*tok)->Encode(text);
    EXPECT_EQ(got, v.outputs[i]) << "input " << i << ": '" << text << "'";
    std::string back;
    for (int32_t id : got) back += (*tok)->Decode(id);
    EXPECT_EQ(back, (space_prefix && !text.empty() ? " " : "") + text) << "decoding input " << i;
    passed += got == v.outputs[i];
  }
  EXPECT_EQ(passed, v.inputs.size());
}

constexpr Where kShared = Where::kShared, kData = Where::kData;

// The vectors of tests/data/vocab (llama.cpp de3ff81), each with its own vocabulary. qwen35's vocabulary
// file is qwen2's with tokenizer.ggml.pre "qwen35" (every other key and value is equal), so it runs on
// the qwen2 file with that pre-tokenizer instead of a second 6 MB copy.
INSTANTIATE_TEST_SUITE_P(
    LlamaCppRelease, VocabVectors,
    ::testing::Values(VectorCase{"llama-bpe", kData, "llama-bpe", kData, "gpt2", "llama-bpe", nullptr, 46},
                      VectorCase{"qwen2", kData, "qwen2", kData, "gpt2", "qwen2", nullptr, 46},
                      VectorCase{"qwen35", kData, "qwen2", kData, "gpt2", "qwen2", "qwen35", 50},
                      VectorCase{"gemma-4", kData, "gemma-4", kData, "gemma4", "", nullptr, 46},
                      VectorCase{"phi-3", kData, "phi-3", kShared, "llama", "default", nullptr, 46},
                      VectorCase{"llama-spm", kData, "llama-spm", kShared, "llama", "default", nullptr, 46},
                      VectorCase{"gpt-2", kData, "gpt-2", kShared, "gpt2", "gpt-2", nullptr, 46},
                      VectorCase{"deepseek-llm", kData, "deepseek-llm", kShared, "gpt2", "deepseek-llm", nullptr, 46},
                      VectorCase{"deepseek-coder", kData, "deepseek-coder", kShared, "gpt2", "deepseek-coder", nullptr, 46},
                      VectorCase{"falcon", kData, "falcon", kShared, "gpt2", "falcon", nullptr, 46},
                      VectorCase{"mpt", kData, "mpt", kShared, "gpt2", "mpt", nullptr, 46},
                      VectorCase{"refact", kData, "refact", kShared, "gpt2", "refact", nullptr, 46},
                      VectorCase{"starcoder", kData, "starcoder", kShared, "gpt2", "starcoder", nullptr, 46}),
    [](const auto& p) {
      std::string n = p.param.vectors;
      for (char& ch : n) ch = ch == '-' ? '_' : ch;
      return n;
    });

// The older vectors of ../shared/vocab (llama.cpp build 4748).
INSTANTIATE_TEST_SUITE_P(
    LlamaCpp4748, VocabVectors,
    ::testing::Values(VectorCase{"llama-bpe", kShared, "llama-bpe", kData, "gpt2", "llama-bpe", nullptr, 46},
                      VectorCase{"qwen2", kShared, "qwen2", kData, "gpt2", "qwen2", nullptr, 46},
                      VectorCase{"phi-3", kShared, "phi-3", kShared, "llama", "default", nullptr, 46},
                      VectorCase{"llama-spm", kShared, "llama-spm", kShared, "llama", "default", nullptr, 46},
                      VectorCase{"gpt-2", kShared, "gpt-2", kShared, "gpt2", "gpt-2", nullptr, 46},
                      VectorCase{"deepseek-llm", kShared, "deepseek-llm", kShared, "gpt2", "deepseek-llm", nullptr, 46},
                      VectorCase{"deepseek-coder", kShared, "deepseek-coder", kShared, "gpt2", "deepseek-coder", nullptr, 46},
                      VectorCase{"falcon", kShared, "falcon", kShared, "gpt2", "falcon", nullptr, 46},
                      VectorCase{"mpt", kShared, "mpt", kShared, "gpt2", "mpt", nullptr, 46},
                      VectorCase{"refact", kShared, "refact", kShared, "gpt2", "refact", nullptr, 46},
                      VectorCase{"starcoder", kShared, "starcoder", kShared, "gpt2", "starcoder", nullptr, 46}),
    [](const auto& p) {
      std::string n = p.param.vectors;
      for (char& ch : n) ch = ch == '-' ? '_' : ch;
      return n;
    });

// Text with special-token strings in it (tests/data/vocab/special-*.inp, written by
// special_vectors.py from llama.cpp's llama-tokenize): left as text, user-defined tokens are still
// matched (control ones, and those llama.cpp names end-of-generation, are not); parsed, every special
// token is, with Phi-3's whitespace stripping after them.
struct SpecialCase {
  const char* vocab;
  Where vocab_at;
  size_t count;
};

void PrintTo(const SpecialCase& c, std::ostream* os) { *os << c.vocab; }

class SpecialVectors : public ::testing::TestWithParam<SpecialCase> {};

TEST_P(SpecialVectors, EncodeAsLlamaCppWithAndWithoutParsingSpecials) {
  const SpecialCase& c = GetParam();
  if (c.vocab_at == Where::kShared) LOWBIT_REQUIRE_SHARED();
  auto g = GgufFile::Open(PathOf(c.vocab_at, std::string("ggml-vocab-") + c.vocab + ".gguf"));
  ASSERT_TRUE(g.ok()) << g.status().message();
  auto vocab = VocabFromGguf(*g);
  ASSERT_TRUE(vocab.ok()) << vocab.status().message();
  auto tok = Tokenizer::Create(*vocab);
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  const std::string base = DataPath(std::string("special-") + c.vocab);
  const Vectors plain = ReadVectors(base);
  std::vector<std::vector<int32_t>> parsed;
  std::istringstream out(ReadText(base + ".parsed.out"));
  for (std::string line; std::getline(out, line);) {
    std::istringstream ids(line);
    parsed.emplace_back();
    for (int32_t id; ids >> id;) parsed.back().push_back(id);
  }
  ASSERT_EQ(plain.inputs.size(), c.count);
  ASSERT_EQ(plain.outputs.size(), c.count);
  ASSERT_EQ(parsed.size(), c.count);
  for (size_t i = 0; i < c.count; ++i) {
    const std::string& text = plain.inputs[i];
    EXPECT_EQ((*tok)->Encode(text), plain.outputs[i]) << "input " << i << " as text: '" << text << "'";
    EXPECT_EQ((*tok)->EncodeSpecial(text, false), parsed[i]) << "input " << i << " parsed: '" << text << "'";
  }
}

INSTANTIATE_TEST_SUITE_P(LlamaCppRelease, SpecialVectors,
                         ::testing::Values(SpecialCase{"phi-3", kShared, 19}, SpecialCase{"llama-spm", kShared, 9},
                                           SpecialCase{"qwen2", kData, 19}, SpecialCase{"llama-bpe", kData, 15},
                                           SpecialCase{"gemma-4", kData, 27}),
                         [](const auto& p) {
                           std::string n = p.param.vocab;
                           for (char& ch : n) ch = ch == '-' ? '_' : ch;
                           return n;
                         });

}  // namespace
}  // namespace lowbit

// Replays the checked-in corpus of broken files (tests/corpus/<parser>/*: every crash a fuzzer or a
// person ever found, plus hand-made hostile inputs) through the parsers: each must return cleanly,
// and files named *.bad must be rejected with an error.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "lowbit/formats/gguf_reader.h"
#include "lowbit/formats/hf.h"
#include "lowbit/formats/imatrix.h"
#include "lowbit/formats/llama2c.h"
#include "lowbit/formats/safetensors.h"
#include "lowbit/formats/sentencepiece_model.h"
#include "lowbit/model/llama.h"
#include "test_data.h"

namespace lowbit {
namespace {
namespace fs = std::filesystem;

// 8 bytes of file size, then a GGUF header (what --tp-send-weights sends); then the shard plans of
// 1 to 3 ranks, which on a header alone end in an error once planned (no data to view).
Status ParseHeaderAndPlan(const std::vector<uint8_t>& b) {
  if (b.size() < 8) return Errorf("corpus: shorter than the 8-byte file size");
  uint64_t file_size = 0;
  std::memcpy(&file_size, b.data(), 8);
  LOWBIT_ASSIGN_OR_RETURN(GgufFile h, GgufFile::ParseHeader(std::span<const uint8_t>(b).subspan(8), file_size, "corpus"));
  for (int ranks = 1; ranks <= 3; ++ranks) {
    for (int r = 0; r < ranks; ++r) {
      auto m = LlamaModel::Load(h, r, ranks);
      if (!m.ok() && m.status().message().find("has no data in this process") == std::string::npos) return m.status();
    }
  }
  return OkStatus();
}

Status ParseAs(const std::string& parser, const std::vector<uint8_t>& b) {
  const std::string_view text(reinterpret_cast<const char*>(b.data()), b.size());
  if (parser == "gguf") return GgufFile::Parse(b, "corpus").status();
  if (parser == "gguf_header") return ParseHeaderAndPlan(b);
  if (parser == "safetensors") return SafetensorsFile::Parse(b, "corpus").status();
  if (parser == "llama2c") return Llama2cCheckpoint::Parse(b, "corpus").status();
  if (parser == "llama2c_tokenizer") return ParseLlama2cTokenizer(b, 512, "corpus").status();
  if (parser == "hf_config") return ParseHfConfig(text, "corpus").status();
  if (parser == "tokenizer_json") return ParseHfTokenizerJson(text, "corpus").status();
  if (parser == "sentencepiece") return ParseSentencePieceModel(b, "corpus").status();
  if (parser == "imatrix") return ParseImatrixDat(b, "corpus").status();
  ADD_FAILURE() << "no parser named " << parser;
  return OkStatus();
}

TEST(Corpus, BrokenFilesAreRejectedCleanly) {
  int files = 0;
  for (const auto& dir : fs::directory_iterator(testing::CorpusDir())) {
    if (!dir.is_directory()) continue;
    const std::string parser = dir.path().filename().string();
    for (const auto& f : fs::directory_iterator(dir.path())) {
      SCOPED_TRACE(f.path().string());
      Status s = ParseAs(parser, testing::ReadFileBytes(f.path().string()));
      if (f.path().extension() == ".bad") {
        EXPECT_FALSE(s.ok()) << "accepted a file marked bad";
        if (!s.ok()) {
          EXPECT_NE(s.message().find("corpus"), std::string::npos) << s.message();
        }
      }
      ++files;
    }
  }
  EXPECT_GT(files, 20);
}

}  // namespace
}  // namespace lowbit

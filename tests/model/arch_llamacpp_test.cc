// Each model family against llama.cpp without a llama.cpp build: tests/data/arch_llamacpp/<shape>.txt
// holds what llama.cpp's llama-perplexity computed on `lowbit synth --shape <shape>` (perplexity and,
// per scored position, the top-1 token and its margin over the second), written by
// bench/arch_vs_llamacpp.py --write-reference. lowbit must give the same perplexity to 1e-3 relative
// and the same top-1 token wherever llama.cpp's margin is not a near-tie (> 0.002 in logits, 8 steps of its saved
// 16-bit log-probabilities at these ranges).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "lowbit/eval/perplexity.h"
#include "lowbit/formats/gguf_vocab.h"
#include "lowbit/formats/hf.h"
#include "lowbit/model/llama.h"
#include "lowbit/pipeline/synth.h"
#include "test_data.h"

namespace lowbit {
namespace {

struct Reference {
  int64_t ctx = 0, chunks = 0;
  double ppl = 0;
  std::vector<std::pair<int32_t, double>> top1;  // token, margin over the second
};

Reference ReadReference(const std::string& path) {
  Reference r;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::string key;
    in >> key;
    if (key == "ctx") {
      std::string k2, k3;
      in >> r.ctx >> k2 >> r.chunks >> k3 >> r.ppl;
    } else if (key == "top1") {
      std::string item;
      while (in >> item) {
        const size_t colon = item.find(':');
        r.top1.emplace_back(std::stoi(item.substr(0, colon)), std::stod(item.substr(colon + 1)));
      }
    }
  }
  return r;
}

// Top-1 tokens of a lowbit --save-logits file (perplexity.h: "LBLOGP01", i64 ctx, n_vocab, n_chunks,
// n_scored, n_tokens, i32 tokens[n_tokens], f32 log-probabilities [n_scored][n_vocab]).
std::vector<int32_t> TopOnes(const std::string& path) {
  const std::vector<uint8_t> b = testing::ReadFileBytes(path);
  int64_t h[5];
  std::memcpy(h, b.data() + 8, sizeof(h));
  const int64_t n_vocab = h[1], n_scored = h[3], n_tokens = h[4];
  const auto* lp = reinterpret_cast<const float*>(b.data() + 48 + 4 * n_tokens);
  std::vector<int32_t> out;
  for (int64_t i = 0; i < n_scored; ++i) {
    const float* row = lp + i * n_vocab;
    out.push_back(static_cast<int32_t>(std::max_element(row, row + n_vocab) - row));
  }
  return out;
}

class ArchVsLlamaCpp : public ::testing::TestWithParam<const char*> {};

TEST_P(ArchVsLlamaCpp, SamePerplexityAndTopTokens) {
  LOWBIT_REQUIRE_SHARED();
  const std::string shape = GetParam();
  const Reference ref = ReadReference(testing::CorpusDir() + "/../data/arch_llamacpp/" + shape + ".txt");
  ASSERT_GT(ref.ppl, 0) << "no reference for " << shape;
  testing::TempDir dir;
  SynthOptions so{.shape = shape, .output = dir.Path("m.gguf"), .threads = 1};
  ASSERT_TRUE(Synthesize(so).ok());
  auto g = GgufFile::Open(so.output);
  ASSERT_TRUE(g.ok());
  auto m = LlamaModel::Load(*g);
  ASSERT_TRUE(m.ok()) << m.status().message();
  auto v = VocabFromGguf(*g);
  ASSERT_TRUE(v.ok());
  auto text = ReadTextFile(testing::SharedPath("data/tinystories/TinyStoriesV2-GPT4-valid.first100.txt"));
  ASSERT_TRUE(text.ok());
  PerplexityOptions po{.ctx = ref.ctx, .chunks = ref.chunks, .threads = 2, .save_logits = dir.Path("l.bin")};
  auto r = Perplexity(*m, *v, *text, po);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_LE(std::fabs(r->ppl - ref.ppl) / ref.ppl, 1e-3) << shape << ": lowbit " << r->ppl << ", llama.cpp " << ref.ppl;
  const std::vector<int32_t> top = TopOnes(dir.Path("l.bin"));
  ASSERT_EQ(top.size(), ref.top1.size());
  int compared = 0;
  for (size_t i = 0; i < top.size(); ++i) {
    if (ref.top1[i].second <= 0.002) continue;
    ++compared;
    EXPECT_EQ(top[i], ref.top1[i].first) << shape << " position " << i << " (llama.cpp margin " << ref.top1[i].second << ")";
  }
  EXPECT_GE(compared, static_cast<int>(top.size()) * 9 / 10);
}

INSTANTIATE_TEST_SUITE_P(Families, ArchVsLlamaCpp,
                         ::testing::Values("tiny-llama3", "tiny-qwen", "tiny-qwen2", "tiny-qwen3", "tiny-phi3", "tiny-gemma2",
                                           "tiny-gemma3", "tiny-qwen3moe", "tiny-qwen2moe", "tiny-mixtral"),
                         [](const auto& p) {
                           std::string n = p.param;
                           for (char& c : n) c = c == '-' ? '_' : c;
                           return n;
                         });

}  // namespace
}  // namespace lowbit

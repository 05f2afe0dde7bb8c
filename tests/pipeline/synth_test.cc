#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "lowbit/formats/gguf_vocab.h"
#include "lowbit/model/llama.h"
#include "lowbit/pipeline/synth.h"
#include "test_data.h"

namespace lowbit {
namespace {

// The tiny shape as Q4_K_M on 2 threads, written to `path`.
SynthOptions TinyQ4KM(const std::string& path) {
  SynthOptions o;
  o.shape = "tiny";
  o.type = "Q4_K_M";
  o.threads = 2;
  o.output = path;
  return o;
}

TEST(Synth, CompleteDeterministicModel) {
  testing::TempDir dir;
  SynthOptions o = TinyQ4KM(dir.Path("a.gguf"));
  auto size = Synthesize(o);
  ASSERT_TRUE(size.ok()) << size.status().message();
  o.output = dir.Path("b.gguf");
  o.threads = 1;
  ASSERT_TRUE(Synthesize(o).ok());
  EXPECT_TRUE(testing::ReadFileBytes(dir.Path("a.gguf")) == testing::ReadFileBytes(dir.Path("b.gguf")))
      << "same seed, any thread count: same bytes";
  auto g = GgufFile::Open(dir.Path("a.gguf"));
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_EQ(g->file_size(), *size);
  EXPECT_EQ(g->FindTensor("blk.0.attn_q.weight")->type, GgmlType::kQ4_K);
  EXPECT_EQ(g->FindTensor("output.weight")->type, GgmlType::kQ6_K);
  EXPECT_EQ(g->FindTensor("blk.0.attn_norm.weight")->type, GgmlType::kF32);
  auto vocab = VocabFromGguf(*g);
  ASSERT_TRUE(vocab.ok()) << vocab.status().message();
  EXPECT_EQ(vocab->tokens.size(), 512u);
  auto model = LlamaModel::Load(*g);
  ASSERT_TRUE(model.ok()) << model.status().message();
  LlamaSession s(*model, 16, 1);
  const float* logits = s.Forward(1, 0);
  for (int i = 0; i < 512; ++i) ASSERT_TRUE(std::isfinite(logits[i]));
  o.shape = "gpt-5";
  auto bad = Synthesize(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("tinyllama-1.1b"), std::string::npos);
}

// repeat_rows (advise's timing file): the first N rows of every tensor are the full file's, the
// rest repeat them, and the file has the full file's size and tensors.
TEST(Synth, RepeatedRowsCopyTheFirstRows) {
  testing::TempDir dir;
  SynthOptions o = TinyQ4KM(dir.Path("full.gguf"));
  ASSERT_TRUE(Synthesize(o).ok());
  o.output = dir.Path("rep.gguf");
  o.repeat_rows = 3;
  ASSERT_TRUE(Synthesize(o).ok());
  auto full = GgufFile::Open(dir.Path("full.gguf"));
  auto rep = GgufFile::Open(dir.Path("rep.gguf"));
  ASSERT_TRUE(full.ok() && rep.ok());
  EXPECT_EQ(full->file_size(), rep->file_size());
  ASSERT_EQ(full->tensors().size(), rep->tensors().size());
  for (const GgufTensorInfo& t : full->tensors()) {
    const GgufTensorInfo* r = rep->FindTensor(t.name);
    ASSERT_NE(r, nullptr) << t.name;
    ASSERT_EQ(r->type, t.type);
    ASSERT_EQ(r->n_bytes, t.n_bytes);
    const uint64_t rows = t.rows(), row_bytes = t.n_bytes / rows;
    const uint64_t drawn = std::min<uint64_t>(rows, 3) * row_bytes;
    EXPECT_EQ(std::memcmp(r->data, t.data, drawn), 0) << t.name << ": the drawn rows";
    for (uint64_t row = 3; row < rows; ++row) {
      ASSERT_EQ(std::memcmp(r->data + row * row_bytes, t.data + (row % 3) * row_bytes, row_bytes), 0) << t.name << " row " << row;
    }
  }
}

}  // namespace
}  // namespace lowbit

// The architectures beyond llama, through the one forward:
// - stories5M (trained) re-expressed as qwen2, qwen and phi3 (tests/model/arch_rewrite.h: biases at
//   zero, NeoX-ordered Q/K rows, fused QKV and gate/up) scores the llama file's perplexity to 1e-4;
// - the same holds split over ranks (fused tensors cut into the ranks' Q/K/V and gate/up rows);
// - unknown architectures and missing or misshapen tensors are one-line errors naming what is wrong.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "lowbit/eval/perplexity.h"
#include "lowbit/formats/gguf_vocab.h"
#include "lowbit/formats/gguf_writer.h"
#include "lowbit/formats/hf.h"
#include "lowbit/model/llama.h"
#include "lowbit/parallel/comm.h"
#include "model/arch_rewrite.h"
#include "model/synth_tiny.h"
#include "test_data.h"

namespace lowbit {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr int64_t kChunks = 2;
#else
constexpr int64_t kChunks = 16;
#endif

class Stories5MAs : public ::testing::TestWithParam<const char*> {};

TEST_P(Stories5MAs, ScoresTheLlamaFilesPerplexity) {
  LOWBIT_REQUIRE_SHARED();
  const std::string arch = GetParam();
  const std::string llama = testing::SharedPath("models/stories5M/stories5M-f32.gguf");
  auto text = ReadTextFile(testing::SharedPath("data/tinystories/TinyStoriesV2-GPT4-valid.first100.txt"));
  ASSERT_TRUE(text.ok());
  testing::TempDir dir;
  auto src = GgufFile::Open(llama);
  ASSERT_TRUE(src.ok());
  const std::string out = dir.Path(arch + ".gguf");
  ASSERT_TRUE(testing::WriteAs(*src, arch, out).ok());
  auto g = GgufFile::Open(out);
  ASSERT_TRUE(g.ok());
  auto m = LlamaModel::Load(*g);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->config().arch, arch);
  EXPECT_TRUE(m->config().rope_neox);
  EXPECT_EQ(m->config().n_ff, 768);  // qwen: feed_forward_length 1536 read as its half
  const double want = testing::FilePerplexity(llama, *text, kChunks), got = testing::FilePerplexity(out, *text, kChunks);
  EXPECT_GT(want, 1.0);
  EXPECT_LE(std::fabs(got - want) / want, 1e-4) << arch << ": " << got << " vs llama " << want;
}

INSTANTIATE_TEST_SUITE_P(Archs, Stories5MAs, ::testing::Values("qwen2", "qwen", "phi3"));

// Fused tensors split over ranks: each rank's Q/K/V and gate/up are row ranges of one tensor.
TEST(ArchTensorParallel, FusedPhi3OnTwoRanksGivesOneRanksLogits) {
  testing::TempDir dir;
  auto src = testing::SynthTiny(dir);
  ASSERT_TRUE(src.ok());
  ASSERT_TRUE(testing::WriteAs(*src, "phi3", dir.Path("phi3.gguf")).ok());
  auto g = GgufFile::Open(dir.Path("phi3.gguf"));
  ASSERT_TRUE(g.ok());
  auto one = LlamaModel::Load(*g);
  ASSERT_TRUE(one.ok()) << one.status().message();
  const std::vector<int32_t> prompt = {1, 9, 200, 31, 77, 400, 5};
  const int64_t V = one->config().n_vocab;
  LlamaSession s1(*one, 32, 1);
  const float* p1 = s1.Forward(prompt, 0);
  const std::vector<float> want(p1, p1 + V);
  std::vector<std::vector<float>> got(2);
  ThreadCommGroup group(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      auto m = LlamaModel::Load(*g, r, 2);
      ASSERT_TRUE(m.ok()) << m.status().message();
      EXPECT_EQ(m->local_heads(), 2);
      LlamaSession s(*m, SessionOptions{.n_ctx = 32, .threads = 1, .comm = group.rank(r)});
      const float* p = s.Forward(prompt, 0);
      got[r].assign(p, p + V);
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < 2; ++r) {
    ASSERT_EQ(got[r].size(), want.size());
    for (int64_t i = 0; i < V; ++i) ASSERT_NEAR(got[r][i], want[i], 1e-4) << "rank " << r << " logit " << i;
  }
}

TEST(ArchErrors, UnknownArchitectureNamesItAndTheKnownOnes) {
  testing::TempDir dir;
  auto src = testing::SynthTiny(dir);
  ASSERT_TRUE(src.ok());
  GgufWriter w;
  for (const GgufKv& kv : src->kvs()) w.SetKv(kv.key, kv.key == "general.architecture" ? GgufValue::String("mamba") : kv.value);
  ASSERT_TRUE(w.Write(dir.Path("mamba.gguf")).ok());
  auto g = GgufFile::Open(dir.Path("mamba.gguf"));
  ASSERT_TRUE(g.ok());
  auto m = LlamaModel::Load(*g);
  ASSERT_FALSE(m.ok());
  const std::string msg(m.status().message());
  EXPECT_NE(msg.find("architecture 'mamba' is not supported"), std::string::npos) << msg;
  EXPECT_NE(msg.find("llama, qwen, qwen2, qwen3, qwen2moe, qwen3moe, phi3, gemma, gemma2, gemma3"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos);
}

TEST(ArchErrors, MissingAndMisshapenTensorsNameTheTensorAndShape) {
  testing::TempDir dir;
  SynthOptions so{.shape = "tiny-qwen3", .output = dir.Path("q3.gguf"), .threads = 1};
  ASSERT_TRUE(Synthesize(so).ok());
  auto src = GgufFile::Open(so.output);
  ASSERT_TRUE(src.ok());
  auto rewrite = [&](const std::string& drop, const std::string& reshape) {
    GgufWriter w;
    for (const GgufKv& kv : src->kvs()) w.SetKv(kv.key, kv.value);
    for (const GgufTensorInfo& t : src->tensors()) {
      if (t.name == drop) continue;
      std::vector<uint64_t> dims(t.dims.begin(), t.dims.begin() + t.n_dims);
      const uint8_t* p = t.data;
      uint64_t n = t.n_bytes;
      if (t.name == reshape) {
        dims[0] /= 2;  // half the elements
        n /= 2;
      }
      EXPECT_TRUE(w.AddTensor(t.name, t.type, dims, [p, n](std::span<uint8_t> o) {
        std::memcpy(o.data(), p, std::min<uint64_t>(n, o.size()));
        return OkStatus();
      }).ok());
    }
    EXPECT_TRUE(w.Write(dir.Path("bad.gguf")).ok());
    auto g = GgufFile::Open(dir.Path("bad.gguf"));
    EXPECT_TRUE(g.ok());
    auto m = LlamaModel::Load(*g);
    EXPECT_FALSE(m.ok());
    return m.ok() ? std::string() : std::string(m.status().message());
  };
  std::string msg = rewrite("blk.1.attn_k_norm.weight", "");
  EXPECT_NE(msg.find("tensor 'blk.1.attn_k_norm.weight' of shape [96, 1] is missing (architecture qwen3)"), std::string::npos) << msg;
  msg = rewrite("", "blk.0.attn_q.weight");
  EXPECT_NE(msg.find("tensor 'blk.0.attn_q.weight' has shape [128, 384], expected [256, 384]"), std::string::npos) << msg;
}

}  // namespace
}  // namespace lowbit

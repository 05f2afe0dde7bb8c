// Mixtures of experts through the one forward (model/moe.cc):
// - routing: softmax, top-k (largest first, lower index first among equals), optional normalization;
// - stories5M (trained) re-expressed with every expert a copy of its dense FFN (tests/model/
//   arch_rewrite.h) scores the llama file's perplexity to 1e-4: Mixtral's layout (llama, top-2 of 8,
//   a random router) and qwen2moe's (top-8 of 64 with a shared expert);
// - a step computes only the chosen experts: experts that are never chosen hold NaN, and the logits
//   are those of a file where they hold numbers;
// - one token, a prompt, a batch of sequences and two ranks give the same logits;
// - a misshapen expert tensor or a MoE file without expert_count is a one-line error.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "lowbit/eval/perplexity.h"
#include "lowbit/formats/gguf_vocab.h"
#include "lowbit/formats/gguf_writer.h"
#include "lowbit/formats/hf.h"
#include "lowbit/model/llama.h"
#include "lowbit/model/moe.h"
#include "lowbit/parallel/comm.h"
#include "lowbit/pipeline/synth.h"
#include "model/arch_rewrite.h"
#include "test_data.h"

namespace lowbit {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr int64_t kChunks = 2;
#else
constexpr int64_t kChunks = 8;
#endif

TEST(RouteExperts, SoftmaxTopKAndNormalization) {
  const float logits[5] = {0.0f, 2.0f, 1.0f, 2.0f, -1.0f};
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - 2.0);
  ExpertChoice c[3];
  RouteExperts(logits, 5, 3, false, c);
  EXPECT_EQ(c[0].expert, 1);  // equal probabilities: the lower index first
  EXPECT_EQ(c[1].expert, 3);
  EXPECT_EQ(c[2].expert, 2);
  EXPECT_NEAR(c[0].weight, 1.0 / sum, 1e-7);
  EXPECT_NEAR(c[2].weight, std::exp(-1.0) / sum, 1e-7);
  RouteExperts(logits, 5, 2, true, c);
  EXPECT_EQ(c[0].expert, 1);
  EXPECT_EQ(c[1].expert, 3);
  EXPECT_FLOAT_EQ(c[0].weight, 0.5f);
  EXPECT_FLOAT_EQ(c[1].weight, 0.5f);
  RouteExperts(logits, 5, 1, true, c);
  EXPECT_EQ(c[0].expert, 1);
  EXPECT_FLOAT_EQ(c[0].weight, 1.0f);
}

struct MoeCase {
  const char* arch;
  int64_t n_expert, n_used;
  bool shared;
};

class Stories5MAsMoe : public ::testing::TestWithParam<MoeCase> {};

TEST_P(Stories5MAsMoe, ScoresTheLlamaFilesPerplexity) {
  LOWBIT_REQUIRE_SHARED();
  const MoeCase c = GetParam();
  const std::string llama = testing::SharedPath("models/stories5M/stories5M-f32.gguf");
  auto text = ReadTextFile(testing::SharedPath("data/tinystories/TinyStoriesV2-GPT4-valid.first100.txt"));
  ASSERT_TRUE(text.ok());
  testing::TempDir dir;
  auto src = GgufFile::Open(llama);
  ASSERT_TRUE(src.ok());
  const std::string out = dir.Path(std::string(c.arch) + "-moe.gguf");
  ASSERT_TRUE(testing::WriteAs(*src, c.arch, out, {.n_expert = c.n_expert, .n_used = c.n_used, .shared = c.shared}).ok());
  auto g = GgufFile::Open(out);
  ASSERT_TRUE(g.ok());
  auto m = LlamaModel::Load(*g);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->config().n_expert, c.n_expert);
  EXPECT_EQ(m->config().n_expert_used, c.n_used);
  EXPECT_EQ(m->config().n_ff_exp, 768);
  EXPECT_EQ(m->config().n_ff_shexp, c.shared ? 768 : 0);
  EXPECT_FALSE(m->PlainLlama());
  const double want = testing::FilePerplexity(llama, *text, kChunks), got = testing::FilePerplexity(out, *text, kChunks);
  EXPECT_GT(want, 1.0);
  EXPECT_LE(std::fabs(got - want) / want, 1e-4) << c.arch << ": " << got << " vs llama " << want;
}

INSTANTIATE_TEST_SUITE_P(Layouts, Stories5MAsMoe,
                         ::testing::Values(MoeCase{"llama", 8, 2, false}, MoeCase{"qwen2moe", 64, 8, true}),
                         [](const auto& p) { return std::string(p.param.arch); });

Expected<GgufFile> SynthMoe(const testing::TempDir& dir, const std::string& shape, const std::string& type = "F32") {
  SynthOptions so{.shape = shape, .output = dir.Path(shape + "-" + type + ".gguf"), .type = type, .threads = 1};
  if (auto size = Synthesize(so); !size.ok()) return size.status();
  return GgufFile::Open(so.output);
}

std::vector<float> Logits(LlamaSession& s, std::span<const int32_t> tokens, int64_t V) {
  const float* p = s.Forward(tokens, 0, true);
  return std::vector<float>(p, p + tokens.size() * V);
}

const std::vector<int32_t> kPrompt = {1, 9, 200, 31, 77, 400, 5, 61, 300, 12, 7, 480};

// A prompt in one step (tokens gathered per expert) and token by token (every expert reading the
// token's row) agree, for each family.
TEST(Moe, PromptAndDecodeAgree) {
  testing::TempDir dir;
  for (const char* shape : {"tiny-qwen3moe", "tiny-qwen2moe", "tiny-mixtral"}) {
    SCOPED_TRACE(shape);
    auto g = SynthMoe(dir, shape);
    ASSERT_TRUE(g.ok()) << g.status().message();
    auto m = LlamaModel::Load(*g);
    ASSERT_TRUE(m.ok()) << m.status().message();
    ASSERT_TRUE(m->config().moe());
    const int64_t V = m->config().n_vocab;
    LlamaSession whole(*m, 64, 2);
    const std::vector<float> want = Logits(whole, kPrompt, V);
    LlamaSession steps(*m, 64, 1);
    for (size_t i = 0; i < kPrompt.size(); ++i) {
      const float* p = steps.Forward(kPrompt[i], static_cast<int64_t>(i));
      for (int64_t v = 0; v < V; ++v) ASSERT_NEAR(p[v], want[i * V + v], 2e-4) << "token " << i << " logit " << v;
    }
  }
}

// Batch-invariant products: a token's logits are the same bits alone or beside other sequences'
// tokens (which route to other experts and change every expert's token count).
TEST(Moe, BatchInvariantLogits) {
  testing::TempDir dir;
  auto g = SynthMoe(dir, "tiny-qwen2moe", "Q4_0");
  ASSERT_TRUE(g.ok()) << g.status().message();
  auto m = LlamaModel::Load(*g);
  ASSERT_TRUE(m.ok()) << m.status().message();
  const int64_t V = m->config().n_vocab;
  const SessionOptions o{.n_ctx = 32, .threads = 2, .max_batch = 32, .n_seq = 3, .batch_invariant = true};
  LlamaSession alone(*m, o), mixed(*m, o);
  std::vector<BatchToken> one, many;
  for (int64_t p = 0; p < 9; ++p) one.push_back({.token = kPrompt[p], .seq = 1, .pos = p, .logits = true});
  const float* a = alone.ForwardBatch(one);
  const std::vector<float> want(a, a + 9 * V);
  for (int64_t p = 0; p < 9; ++p) {
    for (int32_t s = 0; s < 3; ++s) {
      many.push_back({.token = s == 1 ? kPrompt[p] : static_cast<int32_t>((p * 37 + s * 101) % V), .seq = s, .pos = p, .logits = s == 1});
    }
  }
  const float* b = mixed.ForwardBatch(many);
  for (int64_t i = 0; i < 9 * V; ++i) ASSERT_EQ(b[i], want[i]) << "row " << i / V << " logit " << i % V;
}

// Every expert's slice on each of two ranks (and the shared expert's): the sum of the ranks' parts.
TEST(Moe, TwoRanksGiveOneRanksLogits) {
  testing::TempDir dir;
  auto g = SynthMoe(dir, "tiny-qwen2moe");
  ASSERT_TRUE(g.ok()) << g.status().message();
  auto one = LlamaModel::Load(*g);
  ASSERT_TRUE(one.ok());
  const int64_t V = one->config().n_vocab;
  LlamaSession s1(*one, 32, 1);
  const std::vector<float> want = Logits(s1, kPrompt, V);
  std::vector<std::vector<float>> got(2);
  ThreadCommGroup group(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      auto m = LlamaModel::Load(*g, r, 2);
      ASSERT_TRUE(m.ok()) << m.status().message();
      EXPECT_EQ(m->local_ff(), 128);
      EXPECT_EQ(m->local_ff_shexp(), 256);
      LlamaSession s(*m, SessionOptions{.n_ctx = 32, .threads = 1, .comm = group.rank(r)});
      got[r] = Logits(s, kPrompt, V);
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < 2; ++r) {
    ASSERT_EQ(got[r].size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got[r][i], want[i], 2e-4) << "rank " << r << " logit " << i;
  }
}

// Rewrites `src` with every tensor passed through `edit` (name, type, dims, bytes).
using TensorEdit = std::function<void(const GgufTensorInfo&, std::vector<uint64_t>&, std::vector<uint8_t>&)>;
Status Rewrite(const GgufFile& src, const std::string& path, const TensorEdit& edit, const std::string& drop_key = "") {
  GgufWriter w;
  for (const GgufKv& kv : src.kvs()) {
    if (kv.key != drop_key) w.SetKv(kv.key, kv.value);
  }
  auto keep = std::make_shared<std::vector<std::vector<uint8_t>>>();
  keep->reserve(src.tensors().size());
  for (const GgufTensorInfo& t : src.tensors()) {
    std::vector<uint64_t> dims(t.dims.begin(), t.dims.begin() + t.n_dims);
    std::vector<uint8_t> bytes(t.data, t.data + t.n_bytes);
    edit(t, dims, bytes);
    const std::vector<uint8_t>* data = &keep->emplace_back(std::move(bytes));
    LOWBIT_RETURN_IF_ERROR(w.AddTensor(t.name, t.type, dims, [data, keep](std::span<uint8_t> o) {
      std::memcpy(o.data(), data->data(), std::min(o.size(), data->size()));
      return OkStatus();
    }));
  }
  return w.Write(path);
}

// A zero router makes every expert equally likely: the n_used lowest-numbered experts run. The
// others hold NaN, which any product with them (even one weighted by zero) would spread.
TEST(Moe, ComputesOnlyTheChosenExperts) {
  testing::TempDir dir;
  auto g = SynthMoe(dir, "tiny-qwen3moe");
  ASSERT_TRUE(g.ok()) << g.status().message();
  const int64_t used = 2;
  auto zero_router = [](const GgufTensorInfo& t, std::vector<uint64_t>&, std::vector<uint8_t>& b) {
    if (t.name.ends_with("ffn_gate_inp.weight")) std::fill(b.begin(), b.end(), 0);
  };
  ASSERT_TRUE(Rewrite(*g, dir.Path("zero.gguf"), zero_router).ok());
  ASSERT_TRUE(Rewrite(*g, dir.Path("nan.gguf"), [&](const GgufTensorInfo& t, std::vector<uint64_t>& d, std::vector<uint8_t>& b) {
    zero_router(t, d, b);
    if (!t.name.ends_with("_exps.weight")) return;
    const size_t per_expert = b.size() / d[2];
    const float nan = std::numeric_limits<float>::quiet_NaN();
    for (size_t i = used * per_expert; i < b.size(); i += 4) std::memcpy(&b[i], &nan, 4);
  }).ok());
  std::vector<std::vector<float>> logits;
  for (const char* name : {"zero.gguf", "nan.gguf"}) {
    auto f = GgufFile::Open(dir.Path(name));
    ASSERT_TRUE(f.ok());
    auto m = LlamaModel::Load(*f);
    ASSERT_TRUE(m.ok()) << m.status().message();
    LlamaSession s(*m, 32, 2);
    logits.push_back(Logits(s, kPrompt, m->config().n_vocab));
    LlamaSession d(*m, 32, 1);
    const float* p = d.Forward(kPrompt[0], 0);  // one token: the decode path
    logits.push_back(std::vector<float>(p, p + m->config().n_vocab));
  }
  for (size_t k = 0; k < 2; ++k) {
    for (size_t i = 0; i < logits[k].size(); ++i) {
      ASSERT_TRUE(std::isfinite(logits[k + 2][i])) << i;
      ASSERT_EQ(logits[k + 2][i], logits[k][i]) << i;
    }
  }
}

TEST(MoeErrors, MisshapenExpertsAndMissingCountsAreOneLine) {
  testing::TempDir dir;
  auto g = SynthMoe(dir, "tiny-qwen3moe");
  ASSERT_TRUE(g.ok()) << g.status().message();
  auto load = [&](const std::string& path) {
    auto f = GgufFile::Open(path);
    EXPECT_TRUE(f.ok());
    auto m = LlamaModel::Load(*f);
    EXPECT_FALSE(m.ok());
    const std::string msg = m.ok() ? std::string() : std::string(m.status().message());
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    return msg;
  };
  ASSERT_TRUE(Rewrite(*g, dir.Path("few.gguf"), [](const GgufTensorInfo& t, std::vector<uint64_t>& d, std::vector<uint8_t>& b) {
    if (t.name == "blk.1.ffn_up_exps.weight") {
      d[2] -= 1;  // one expert fewer
      b.resize(b.size() / 8 * 7);
    }
  }).ok());
  std::string msg = load(dir.Path("few.gguf"));
  EXPECT_NE(msg.find("tensor 'blk.1.ffn_up_exps.weight' has shape [256, 256, 7], expected [256, 256, 8]"), std::string::npos) << msg;
  ASSERT_TRUE(Rewrite(*g, dir.Path("nocount.gguf"), [](const GgufTensorInfo&, std::vector<uint64_t>&, std::vector<uint8_t>&) {},
                      "qwen3moe.expert_count").ok());
  msg = load(dir.Path("nocount.gguf"));
  EXPECT_NE(msg.find("qwen3moe.expert_count is missing or 0; qwen3moe is a mixture of experts"), std::string::npos) << msg;
}

}  // namespace
}  // namespace lowbit

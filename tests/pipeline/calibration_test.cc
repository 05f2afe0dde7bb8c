#include "lowbit/pipeline/calibration.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <map>

#include "lowbit/formats/gguf_vocab.h"
#include "lowbit/pipeline/model_source.h"
#include "test_data.h"

namespace lowbit {
namespace {

using testing::SharedPath;

TEST(Calibration, SamplesAreDeterministicDistinctWindowsStartingWithBos) {
  LOWBIT_REQUIRE_SHARED();
  auto g = GgufFile::Open(SharedPath("models/stories5M/stories5M-f32.gguf"));
  ASSERT_TRUE(g.ok()) << g.status().message();
  auto vocab = VocabFromGguf(*g);
  ASSERT_TRUE(vocab.ok());
  CalibrationOptions o{.text_path = SharedPath("data/tinystories/TinyStoriesV2-GPT4-valid.first100.txt"), .nsamples = 16, .seqlen = 128, .seed = 7};
  auto a = DrawCalibrationSamples(*vocab, o);
  auto b = DrawCalibrationSamples(*vocab, o);
  ASSERT_TRUE(a.ok()) << a.status().message();
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*a, *b);
  ASSERT_EQ(a->size(), 16u);
  for (size_t i = 0; i < a->size(); ++i) {
    ASSERT_EQ((*a)[i].size(), 128u);
    EXPECT_EQ((*a)[i][0], vocab->bos_id);
    for (size_t j = 0; j < i; ++j) EXPECT_NE((*a)[i], (*a)[j]);
  }
  o.seed = 8;
  auto c = DrawCalibrationSamples(*vocab, o);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(*a, *c);
  // The text holds ~40,700 tokens: 318 windows of 128.
  o.nsamples = 400;
  auto d = DrawCalibrationSamples(*vocab, o);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("windows of 128 tokens, fewer than the 400 samples"), std::string::npos) << d.status().message();
}

// Layer by layer, the calibrator's hidden states feed each matrix exactly the inputs a whole forward
// pass gives it (same batch, same positions): bit for bit.
TEST(Calibration, LayerByLayerInputsEqualTheWholeForward) {
  LOWBIT_REQUIRE_SHARED();
  auto g = GgufFile::Open(SharedPath("models/stories5M/stories5M-f32.gguf"));
  ASSERT_TRUE(g.ok());
  auto model = LlamaModel::Load(*g);
  ASSERT_TRUE(model.ok());
  auto vocab = VocabFromGguf(*g);
  ASSERT_TRUE(vocab.ok());
  auto samples = DrawCalibrationSamples(
      *vocab, {.text_path = SharedPath("data/tinystories/TinyStoriesV2-GPT4-valid.first100.txt"), .nsamples = 2, .seqlen = 64, .seed = 1});
  ASSERT_TRUE(samples.ok());
  // Reference: every matrix input of sample 1 from one forward.
  std::map<std::string, std::vector<float>> ref;
  {
    LlamaSession s(*model, SessionOptions{.n_ctx = 64, .threads = 2, .max_batch = 64});
    s.SetObserver([&](const std::string& name, const float* x, int64_t n) { ref[name].insert(ref[name].end(), x, x + n); });
    s.Forward((*samples)[1], 0);
  }
  ThreadPool pool(2);
  LayerCalibrator cal(&*model, *samples, &pool);
  const int64_t L = model->config().n_layer;
  for (int64_t l = 0; l < L; ++l) {
    cal.MakeLayerFloat(l);  // F32 already: the copies hold the same values
    for (Sublayer part : {Sublayer::kAttention, Sublayer::kFfn}) {
      const std::vector<LayerMatrix> want = part == Sublayer::kAttention
                                                ? std::vector<LayerMatrix>{LayerMatrix::kQ, LayerMatrix::kK, LayerMatrix::kO}
                                                : std::vector<LayerMatrix>{LayerMatrix::kUp, LayerMatrix::kDown};
      int calls = 0;
      int64_t sample = 0;
      cal.Pass(l, part, want, [&](LayerMatrix m, const float* x, int64_t n, int64_t width) {
        ++calls;
        if (sample != 1) return;
        const std::string name = "blk." + std::to_string(l) + "." + LayerMatrixName(m) + ".weight";
        ASSERT_EQ(ref[name].size(), static_cast<size_t>(n * width)) << name;
        EXPECT_EQ(std::memcmp(ref[name].data(), x, ref[name].size() * 4), 0) << name;
      }, [&](int64_t s, const float*) { sample = s + 1; });
      EXPECT_EQ(calls, 2 * 2);  // two distinct inputs per part (q/k shared), two samples
      cal.Advance(l, part);
    }
    cal.FreeLayer();
    // Point the views back at the file before the buffers are gone? Freed layers are never run again.
  }
}

// An HF folder assembled in memory (views into the safetensors, Q/K rows un-permuted) runs exactly
// like llama.cpp's GGUF of the same checkpoint: same logits, bit for bit.
TEST(ModelSource, HfFolderRunsLikeTheGguf) {
  LOWBIT_REQUIRE_SHARED();
  auto gguf = OpenModel(SharedPath("models/stories5M/stories5M-f32.gguf"));
  auto hf = OpenModel(SharedPath("models/stories5M/hf-f32"));
  ASSERT_TRUE(gguf.ok()) << gguf.status().message();
  ASSERT_TRUE(hf.ok()) << hf.status().message();
  EXPECT_FALSE(gguf->assembled());
  EXPECT_TRUE(hf->assembled());
  auto a = LlamaModel::Load(*gguf);
  auto b = LlamaModel::Load(*hf);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok()) << b.status().message();
  auto vocab = VocabFromGguf(*hf);
  ASSERT_TRUE(vocab.ok()) << vocab.status().message();
  const std::vector<int32_t> tokens = {1, 403, 407, 261, 378};
  LlamaSession sa(*a, 64, 1), sb(*b, 64, 1);
  const float* la = sa.Forward(tokens, 0, true);
  const float* lb = sb.Forward(tokens, 0, true);
  EXPECT_EQ(std::memcmp(la, lb, tokens.size() * 512 * sizeof(float)), 0);
}

}  // namespace
}  // namespace lowbit

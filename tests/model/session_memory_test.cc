// PlanSession (model/session_memory.h) is what LlamaSession allocates: the heap grows by its total
// when a session is built (measured with mallinfo2), and running a full batch through every product
// grows nothing but what PlanSession says comes later (per-thread attention scores, all logits).
#include <gtest/gtest.h>
#include <malloc.h>

#include <vector>

#include "lowbit/model/llama.h"
#include "lowbit/model/session_memory.h"
#include "lowbit/pipeline/synth.h"
#include "test_data.h"

namespace lowbit {
namespace {

int64_t HeapBytes() {
  const struct mallinfo2 m = mallinfo2();
  return static_cast<int64_t>(m.uordblks + m.hblkhd);
}

TEST(SessionMemory, PlanIsWhatTheSessionAllocates) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer replaces malloc; mallinfo2 does not see its heap";
#endif
  testing::TempDir dir;
  std::vector<std::string> files;
  for (const char* type : {"F32", "Q4_0", "Q4_K_M"}) {
    SynthOptions so;
    so.shape = "tiny";
    so.type = type;
    so.threads = 1;
    so.output = dir.Path(std::string("tiny-") + type + ".gguf");
    ASSERT_TRUE(Synthesize(so).ok());
    files.push_back(so.output);
  }
  for (const std::string& file : files) {
    auto g = GgufFile::Open(file);
    ASSERT_TRUE(g.ok());
    auto model = LlamaModel::Load(*g);
    ASSERT_TRUE(model.ok());
    for (bool f16 : {false, true}) {
      for (int threads : {1, 2}) {
        SCOPED_TRACE(file + (f16 ? " f16" : " f32") + " threads " + std::to_string(threads));
        const SessionOptions o{.n_ctx = 96, .threads = threads, .max_batch = 64, .kv_f16 = f16};
        const SessionSizes plan = PlanSession(*model, o);
        EXPECT_EQ(plan.batch, 64);
        EXPECT_EQ(plan.kv_bytes, uint64_t{2} * 2 * 96 * 128 * (f16 ? 2 : 4));  // 2 layers, K and V, 2 KV heads of 64
        std::vector<int32_t> tokens(64);
        for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>(i * 7 % 512);
        auto run = [&](LlamaSession& s) {
          s.Forward(tokens, 0, /*all_logits=*/true);  // every product at a full step, the classifier too
          for (int64_t p = 64; p < 70; ++p) s.Forward(3, p);
        };
        if (threads == 1) {
          // The kernels' own per-thread buffers (GEMM packing, thread_local) are sized by a first
          // run on this thread; they are not the session's.
          LlamaSession warm(*model, o);
          run(warm);
        }
        const int64_t before = HeapBytes();
        {
          LlamaSession s(*model, o);
          // The buffers PlanSession counts at construction, plus the thread pool and the weights'
          // names (a few KB), plus malloc's headers.
          const int64_t built = HeapBytes() - before;
          const int64_t planned = static_cast<int64_t>(plan.TotalBytes() - plan.AttentionScratchBytes());
          EXPECT_GE(built, planned);
          EXPECT_LE(built, planned + 16384) << "built " << built << " planned " << planned;
          run(s);
          // Only the logits of 64 tokens are new: the activation scratch was sized for every product
          // at construction (a missing term would grow it by at least a token row per token).
          const int64_t grown = HeapBytes() - before - built;
          const int64_t later = static_cast<int64_t>(plan.LogitsBytes(64) - plan.LogitsBytes(1));
          if (threads == 1) {
            EXPECT_LE(grown, later + 1024) << "grown " << grown << " later " << later;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace lowbit

// PlanSession (model/session_memory.h) is what LlamaSession allocates: the heap grows by its total
// when a session is built (measured with mallinfo2), and running a full batch through every product
// grows nothing but what PlanSession says comes later (per-thread attention scores, all logits).
#include <gtest/gtest.h>
#include <malloc.h>

#include <utility>
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
  // The dense tiny model in three types, and a mixture of experts (router, experts, shared expert).
  for (auto [shape, type] : {std::pair{"tiny", "F32"}, std::pair{"tiny", "Q4_0"}, std::pair{"tiny", "Q4_K_M"},
                             std::pair{"tiny-qwen2moe", "Q4_0"}}) {
    SynthOptions so;
    so.shape = shape;
    so.type = type;
    so.threads = 1;
    so.output = dir.Path(std::string(shape) + "-" + type + ".gguf");
    ASSERT_TRUE(Synthesize(so).ok());
    files.push_back(so.output);
  }
  for (const std::string& file : files) {
    auto g = GgufFile::Open(file);
    ASSERT_TRUE(g.ok());
    auto model = LlamaModel::Load(*g);
    ASSERT_TRUE(model.ok());
    // One sequence as run builds it; three slots with batch-invariant products as serve builds them.
    for (auto [f16, n_seq] : {std::pair{false, 1}, std::pair{true, 1}, std::pair{false, 3}}) {
      for (int threads : {1, 2}) {
        SCOPED_TRACE(file + (f16 ? " f16" : " f32") + " slots " + std::to_string(n_seq) + " threads " + std::to_string(threads));
        const SessionOptions o{.n_ctx = 96, .threads = threads, .max_batch = 64, .kv_f16 = f16, .n_seq = n_seq, .batch_invariant = n_seq > 1};
        const SessionSizes plan = PlanSession(*model, o);
        EXPECT_EQ(plan.batch, 64);
        // 2 layers, K and V, each slot's 96 positions of 2 KV heads of 64.
        EXPECT_EQ(plan.kv_bytes, uint64_t{2} * 2 * static_cast<uint64_t>(n_seq) * 96 * 128 * (f16 ? 2 : 4));
        std::vector<BatchToken> batch(64);
        std::vector<int64_t> next(static_cast<size_t>(n_seq), 0);  // each slot's next position
        for (size_t i = 0; i < batch.size(); ++i) {
          const int32_t seq = static_cast<int32_t>(i) % n_seq;
          batch[i] = {.token = static_cast<int32_t>(i * 7 % 512), .seq = seq, .pos = next[static_cast<size_t>(seq)]++, .logits = true};
        }
        auto run = [&](LlamaSession& s) {
          s.ForwardBatch(batch);  // every product at a full step, the classifier on all 64 rows too
          for (int64_t p = 0; p < 6; ++p) {
            std::vector<BatchToken> step;
            for (int32_t q = 0; q < n_seq; ++q) step.push_back({.token = 3, .seq = q, .pos = next[static_cast<size_t>(q)] + p, .logits = true});
            s.ForwardBatch(step);
          }
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
          // glibc's per-thread cache hands out blocks under ~1 KiB freed earlier without mallinfo2
          // counting them again (a mixture of experts' per-expert row table is one).
          EXPECT_GE(built, planned - 1024);
          EXPECT_LE(built, planned + 16384) << "built " << built << " planned " << planned;
          run(s);
          // Only the logits of 64 tokens are new: the activation scratch was sized for every product
          // at construction (a missing term would grow it by at least a token row per token).
          const int64_t grown = HeapBytes() - before - built;
          const int64_t later = static_cast<int64_t>(plan.LogitsBytes(64) - plan.LogitsBytes(1));
          if (threads == 1) {
            // (A missing term would grow it by a row of floats per token: 64 KB here. A few KB are
            // allocated once per process by the first mixture-of-experts step.)
            EXPECT_LE(grown, later + 4096) << "grown " << grown << " later " << later;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace lowbit

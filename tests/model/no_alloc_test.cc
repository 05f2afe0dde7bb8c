// Decoding never allocates: after the first token (which sizes per-thread scratch), a forward step
// plus sampling performs no heap allocation. Counted with a replaced global operator new.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "lowbit/model/llama.h"
#include "lowbit/pipeline/synth.h"
#include "lowbit/sampling/sampler.h"
#include "test_data.h"

// The replacement operator new/delete below pair malloc with free, which is correct; GCC 12's
// -Wmismatched-new-delete cannot see that once it inlines them into gtest's factory.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace {
std::atomic<long> g_allocations{0};
std::atomic<bool> g_counting{false};
}  // namespace

void* operator new(size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
// The other forms, so every allocation in this binary pairs malloc with free (ASan checks pairs;
// std::stable_sort's buffer comes from the nothrow form).
void* operator new[](size_t n) { return ::operator new(n); }
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n == 0 ? 1 : n);
}
void* operator new[](size_t n, const std::nothrow_t& t) noexcept { return ::operator new(n, t); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace lowbit {
namespace {

TEST(Decode, NoAllocationPerToken) {
  g_counting = true;
  ::operator delete(::operator new(16));  // the counter itself works (a direct call cannot be elided)
  g_counting = false;
  ASSERT_EQ(g_allocations.exchange(0), 1);
  // A synthetic stories15m-shaped model: its 32000 x 288 classifier runs on the thread pool.
  testing::TempDir dir;
  SynthOptions so;
  so.shape = "stories15m";
  so.type = "Q8_0";
  so.output = dir.Path("s15.gguf");
  so.threads = 2;
  ASSERT_TRUE(Synthesize(so).ok());
  std::vector<std::string> files = {so.output};
  if (!testing::SharedDir().empty()) {
    files.push_back(testing::SharedPath("models/stories260K/stories260K-f32.gguf"));
    files.push_back(testing::SharedPath("models/stories5M/llamacpp/stories5M-q4_k_m.gguf"));
  }
  for (const std::string& file : files) {
    SCOPED_TRACE(file);
    auto g = GgufFile::Open(file);
    ASSERT_TRUE(g.ok());
    auto model = LlamaModel::Load(*g);
    ASSERT_TRUE(model.ok());
    for (int threads : {1, 2}) {
      LlamaSession s(*model, 64, threads);
      SamplerParams sp;
      sp.seed = 3;
      Sampler sampler(sp, model->config().n_vocab);
      std::vector<int32_t> history;
      history.reserve(64);
      std::vector<float> logits(model->config().n_vocab);
      int32_t tok = 1;
      for (int64_t pos = 0; pos < 40; ++pos) {
        if (pos == 8) g_counting = true;  // warm-up done: per-thread scratch exists
        const float* out = s.Forward(tok, pos);
        std::copy(out, out + logits.size(), logits.begin());
        tok = sampler.Sample(logits.data(), history);
        history.push_back(tok);
      }
      g_counting = false;
      EXPECT_EQ(g_allocations.exchange(0), 0) << threads << " threads";
    }
  }
}

}  // namespace
}  // namespace lowbit

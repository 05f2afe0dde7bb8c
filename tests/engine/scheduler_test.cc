// The continuous-batching scheduler on a small model: many requests at once give the tokens each
// gets alone (same seed); a slot's next request reuses the common prefix; a cancelled request frees
// its slot; the queue bound answers busy; max_tokens, the context's end and EOS finish requests.
#include <gtest/gtest.h>

#include <thread>

#include "engine/drain.h"
#include "lowbit/engine/scheduler.h"
#include "lowbit/formats/gguf_vocab.h"
#include "model/synth_tiny.h"

namespace lowbit {
namespace {

using namespace std::chrono_literals;

using Result = testing::Drained;
using testing::Drain;

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto g = testing::SynthTiny(dir_, "Q4_K");
    ASSERT_TRUE(g.ok()) << g.status().message();
    g_ = std::make_unique<GgufFile>(std::move(*g));
    auto m = LlamaModel::Load(*g_);
    ASSERT_TRUE(m.ok());
    model_ = std::make_unique<LlamaModel>(std::move(*m));
    auto v = VocabFromGguf(*g_);
    ASSERT_TRUE(v.ok()) << v.status().message();
    vocab_ = std::make_unique<Vocab>(std::move(*v));
    auto t = Tokenizer::Create(*vocab_);
    ASSERT_TRUE(t.ok());
    tok_ = std::move(*t);
  }
  GenerationRequest Req(int i, int64_t max_tokens = 12) {
    GenerationRequest r;
    for (int k = 0; k < 3 + 5 * i; ++k) r.prompt.push_back(10 + 37 * i + k);
    r.sampling.seed = 100 + i;
    r.sampling.temp = 0.9f;
    r.max_tokens = max_tokens;
    r.ignore_eos = true;
    return r;
  }
  testing::TempDir dir_;
  std::unique_ptr<GgufFile> g_;
  std::unique_ptr<LlamaModel> model_;
  std::unique_ptr<Vocab> vocab_;
  std::unique_ptr<Tokenizer> tok_;
};

TEST_F(SchedulerTest, ConcurrentRequestsGetTheTokensTheyGetAlone) {
  std::vector<Result> alone;
  {
    Scheduler s(*model_, *tok_, *vocab_, SchedulerOptions{.n_slots = 1, .n_ctx = 128, .threads = 2});
    for (int i = 0; i < 6; ++i) alone.push_back(Drain(**s.Submit(Req(i))));
  }
  for (int64_t chunk : {4, 128}) {
    Scheduler s(*model_, *tok_, *vocab_, SchedulerOptions{.n_slots = 4, .n_ctx = 128, .threads = 2, .prompt_chunk = chunk});
    std::vector<std::shared_ptr<RequestChannel>> chans;
    for (int i = 0; i < 6; ++i) chans.push_back(*s.Submit(Req(i)));  // 4 run, 2 wait for a slot
    for (int i = 0; i < 6; ++i) {
      Result r = Drain(*chans[i]);
      EXPECT_EQ(r.tokens, alone[i].tokens) << "request " << i << ", prompt chunks of " << chunk;
      EXPECT_EQ(r.text, alone[i].text);
      EXPECT_EQ(r.done.finish_reason, "length");
      EXPECT_EQ(r.done.completion_tokens, 12);
    }
  }
}

std::shared_ptr<RequestChannel> Submitted(Scheduler& s, GenerationRequest r) {
  auto ch = s.Submit(std::move(r));
  EXPECT_TRUE(ch.ok()) << ch.status().message();
  return ch.ok() ? *ch : nullptr;
}

TEST_F(SchedulerTest, PrefixReuseAndTheContextsEnd) {
  Scheduler s(*model_, *tok_, *vocab_, SchedulerOptions{.n_slots = 1, .n_ctx = 64, .threads = 1, .max_queue = 1});
  GenerationRequest a = Req(1, 4);
  auto ch = Submitted(s, a);
  ASSERT_NE(ch, nullptr);
  Result first = Drain(*ch);
  EXPECT_EQ(first.done.cached_tokens, 0);
  // The next turn: the same prompt, the reply, more; everything before the reply's last token is cached.
  GenerationRequest b = a;
  b.prompt.insert(b.prompt.end(), first.tokens.begin(), first.tokens.end());
  b.prompt.push_back(7);
  ch = Submitted(s, b);
  ASSERT_NE(ch, nullptr);
  Result second = Drain(*ch);
  EXPECT_EQ(second.done.cached_tokens, static_cast<int64_t>(a.prompt.size() + first.tokens.size() - 1));
  // prompt + max_tokens over the context is refused; without max_tokens it ends at the context.
  GenerationRequest big = Req(0, 70);
  EXPECT_FALSE(s.Submit(big).ok());
  big.max_tokens = -1;
  ch = Submitted(s, big);
  ASSERT_NE(ch, nullptr);
  Result to_end = Drain(*ch);
  EXPECT_EQ(to_end.done.finish_reason, "length");
  EXPECT_EQ(to_end.done.prompt_tokens + to_end.done.completion_tokens, 64 + 1);  // the last token needs no position
}

TEST_F(SchedulerTest, FullQueueIsBusyAndCancelFreesTheSlot) {
  Scheduler s(*model_, *tok_, *vocab_, SchedulerOptions{.n_slots = 1, .n_ctx = 8192, .threads = 1, .max_queue = 1});
  auto running = Submitted(s, Req(2, -1));  // thousands of tokens: it runs until cancelled
  ASSERT_NE(running, nullptr);
  GenerationEvent ev;
  ASSERT_TRUE(running->Next(&ev, 30s));  // it holds the slot
  auto waiting = Submitted(s, Req(3, 2));  // may wait
  ASSERT_NE(waiting, nullptr);
  auto busy = s.Submit(Req(4, 2));
  ASSERT_FALSE(busy.ok());
  EXPECT_EQ(busy.status().message().rfind("busy", 0), 0u) << busy.status().message();
  running->Cancel();
  Result w = Drain(*waiting);
  EXPECT_EQ(w.done.completion_tokens, 2);
  EXPECT_EQ(s.Metrics().requests_cancelled, 1);
  EXPECT_EQ(s.Metrics().slots_busy, 0);
}

}  // namespace
}  // namespace lowbit

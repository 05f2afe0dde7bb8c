// Speculative decoding in the continuous-batching scheduler, on stories5M, with prompt lookup and
// with stories260K as a draft model: greedy requests get the tokens, text, finish reason and counts
// the scheduler gives without drafts, alone and several at once, with adaptive and fixed draft
// lengths, with max_tokens, the context's end and repetition penalties; a stop string inside a run
// of accepted drafts cuts the text where plain decoding cuts it; seeded sampling reproduces its text
// whatever else runs; the counts add up.
#include <gtest/gtest.h>

#include <optional>
#include <tuple>

#include <fmt/format.h>

#include "engine/drain.h"
#include "lowbit/engine/scheduler.h"
#include "lowbit/formats/gguf_vocab.h"
#include "test_data.h"

namespace lowbit {
namespace {

using namespace std::chrono_literals;

using Result = testing::Drained;
using testing::Drain;

const char* kPrompts[] = {
    // Repetitive: prompt lookup's case.
    "Lily had a red ball. She liked to play with the ball in the park. One day the ball rolled away. "
    "Lily had a red ball. She liked to play with the ball in the park. One day",
    "Tom said: \"I want to play. I want to play. I want to play.\" Tom said:",
    "The cat sat on the mat. The dog sat on the log. The cat",
    "Once upon a time",
};

class SchedulerSpecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LOWBIT_REQUIRE_SHARED();
    auto g = GgufFile::Open(testing::SharedPath("models/stories5M/stories5M-f32.gguf"));
    ASSERT_TRUE(g.ok()) << g.status().message();
    g_.emplace(std::move(*g));
    auto m = LlamaModel::Load(*g_);
    ASSERT_TRUE(m.ok()) << m.status().message();
    model_.emplace(std::move(*m));
    auto v = VocabFromGguf(*g_);
    ASSERT_TRUE(v.ok()) << v.status().message();
    vocab_ = std::move(*v);
    auto t = Tokenizer::Create(vocab_);
    ASSERT_TRUE(t.ok());
    tok_ = std::move(*t);
  }
  GenerationRequest Req(const char* prompt, int64_t max_tokens, float repeat_penalty = 1.0f) const {
    GenerationRequest r;
    r.prompt = tok_->EncodeWithBos(prompt);
    r.sampling.temp = 0;
    r.sampling.repeat_penalty = repeat_penalty;
    r.max_tokens = max_tokens;
    return r;
  }
  // Every request submitted at once to a scheduler with these options; the results in order.
  std::vector<Result> Serve(const SchedulerOptions& o, const std::vector<GenerationRequest>& reqs, SchedulerMetrics* m = nullptr) const {
    Scheduler s(*model_, *tok_, vocab_, o);
    std::vector<std::shared_ptr<RequestChannel>> chans;
    for (const GenerationRequest& r : reqs) {
      auto ch = s.Submit(r);
      EXPECT_TRUE(ch.ok()) << ch.status().message();
      if (!ch.ok()) return {};
      chans.push_back(*ch);
    }
    std::vector<Result> out;
    for (auto& ch : chans) out.push_back(Drain(*ch));
    if (m != nullptr) *m = s.Metrics();
    return out;
  }
  // One request at a time, without drafts.
  std::vector<Result> Plain(const std::vector<GenerationRequest>& reqs, int64_t n_ctx) const {
    std::vector<Result> out;
    for (const GenerationRequest& r : reqs) {
      std::vector<Result> one = Serve(SchedulerOptions{.n_slots = 1, .n_ctx = n_ctx, .threads = 2}, {r});
      out.push_back(one.empty() ? Result{} : one[0]);
    }
    return out;
  }
  static void ExpectSame(const std::vector<Result>& got, const std::vector<Result>& want, const std::string& what) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].tokens, want[i].tokens) << what << ", request " << i;
      EXPECT_EQ(got[i].text, want[i].text) << what << ", request " << i;
      EXPECT_EQ(got[i].done.kind, GenerationEvent::Kind::kDone) << what << ", request " << i;
      EXPECT_EQ(got[i].done.finish_reason, want[i].done.finish_reason) << what << ", request " << i;
      EXPECT_EQ(got[i].done.completion_tokens, want[i].done.completion_tokens) << what << ", request " << i;
      EXPECT_EQ(got[i].done.prompt_tokens, want[i].done.prompt_tokens) << what << ", request " << i;
      EXPECT_LE(got[i].done.accepted, got[i].done.drafted);
    }
  }
  std::optional<GgufFile> g_;
  std::optional<LlamaModel> model_;
  Vocab vocab_;
  std::unique_ptr<Tokenizer> tok_;
};

TEST_F(SchedulerSpecTest, GreedyLookupIsPlainServingAloneAndTogether) {
  std::vector<GenerationRequest> reqs;
  for (const char* p : kPrompts) reqs.push_back(Req(p, 64));
  reqs.push_back(Req(kPrompts[0], 40, 1.1f));  // the penalty sees accepted drafts as history
  reqs.push_back(Req(kPrompts[2], 40, 1.1f));
  reqs.push_back(Req(kPrompts[0], -1));  // until the context's end (or the end of the story)
  const int64_t n_ctx = 160;
  const std::vector<Result> want = Plain(reqs, n_ctx);
  int64_t drafted = 0, accepted = 0;
  for (auto [slots, max, adaptive, chunk] : {std::tuple{1, 16, true, 128}, std::tuple{4, 16, true, 16}, std::tuple{3, 5, false, 7}}) {
    SchedulerOptions o{.n_slots = slots, .n_ctx = n_ctx, .threads = 2, .prompt_chunk = chunk};
    o.spec = SpeculativeOptions{.lookup = true, .draft_max = max, .adaptive = adaptive};
    SchedulerMetrics m;
    const std::vector<Result> got = Serve(o, reqs, &m);
    ExpectSame(got, want, fmt::format("{} slots, draft-max {}{}", slots, max, adaptive ? "" : " fixed"));
    int64_t d = 0, a = 0;
    for (const Result& r : got) {
      EXPECT_TRUE(r.done.speculative);
      d += r.done.drafted;
      a += r.done.accepted;
    }
    EXPECT_EQ(m.drafted_tokens_total, d) << "the metrics count every request's drafts";
    EXPECT_EQ(m.accepted_tokens_total, a);
    drafted += d;
    accepted += a;
  }
  EXPECT_GT(accepted, 60) << "the repetitive prompts are drafted and accepted (" << accepted << "/" << drafted << ")";
}

TEST_F(SchedulerSpecTest, StopStringInsideAcceptedDraftsCutsWherePlainCuts) {
  GenerationRequest base = Req(kPrompts[0], 64);
  const Result free_run = Plain({base}, 256)[0];
  ASSERT_GT(free_run.text.size(), 60u);
  // Stop strings taken from the middle of the text (where drafts are accepted in runs), one of them
  // beginning inside a token.
  for (size_t at : {size_t{20}, size_t{33}, size_t{47}}) {
    GenerationRequest r = base;
    r.stop = {free_run.text.substr(at, 5)};
    const Result want = Plain({r}, 256)[0];
    ASSERT_EQ(want.done.finish_reason, "stop");
    std::vector<GenerationRequest> together = {r, Req(kPrompts[1], 30), Req(kPrompts[2], 30)};
    for (int max : {16, 4}) {
      SchedulerOptions o{.n_slots = 3, .n_ctx = 256, .threads = 2};
      o.spec = SpeculativeOptions{.lookup = true, .draft_max = max, .adaptive = max == 16};
      const Result got = Serve(o, together)[0];
      EXPECT_EQ(got.text, want.text) << "stop '" << r.stop[0] << "'";
      EXPECT_EQ(got.tokens, want.tokens);
      EXPECT_EQ(got.done.finish_reason, "stop");
      EXPECT_EQ(got.done.completion_tokens, want.done.completion_tokens);
      EXPECT_EQ(got.text.find(r.stop[0]), std::string::npos);
    }
  }
}

TEST_F(SchedulerSpecTest, MaxTokensIsNeverExceeded) {
  for (int64_t n : {1, 2, 3, 7, 17}) {
    GenerationRequest r = Req(kPrompts[0], n);
    r.ignore_eos = true;
    const Result want = Plain({r}, 256)[0];
    SchedulerOptions o{.n_slots = 2, .n_ctx = 256, .threads = 2};
    o.spec = SpeculativeOptions{.lookup = true, .draft_max = 16, .adaptive = false};
    const Result got = Serve(o, {r, Req(kPrompts[2], 20)})[0];
    EXPECT_EQ(got.tokens, want.tokens) << "max_tokens " << n;
    EXPECT_EQ(got.done.completion_tokens, n);
    EXPECT_EQ(got.done.finish_reason, "length");
  }
}

TEST_F(SchedulerSpecTest, SeededSamplingReproducesItsTextWhateverElseRuns) {
  GenerationRequest r = Req(kPrompts[0], 60);
  r.sampling.temp = 0.7f;
  r.sampling.top_k = 40;
  r.sampling.seed = 1234;
  SchedulerOptions one{.n_slots = 1, .n_ctx = 256, .threads = 2};
  one.spec = SpeculativeOptions{.lookup = true};
  const Result a = Serve(one, {r})[0];
  ASSERT_EQ(a.done.kind, GenerationEvent::Kind::kDone);
  EXPECT_FALSE(a.tokens.empty());
  EXPECT_GT(a.done.drafted, 0);
  const Result b = Serve(one, {r})[0];
  EXPECT_EQ(b.tokens, a.tokens);
  SchedulerOptions four = one;
  four.n_slots = 4;
  GenerationRequest other = Req(kPrompts[1], 50);
  other.sampling.temp = 0.9f;
  other.sampling.seed = 99;
  const std::vector<Result> c = Serve(four, {other, r, Req(kPrompts[2], 40), other});
  EXPECT_EQ(c[1].tokens, a.tokens) << "the same seed gives the same text beside other requests";
  EXPECT_EQ(c[1].text, a.text);
  EXPECT_EQ(c[0].tokens, c[3].tokens);
}

class SchedulerDraftModelTest : public SchedulerSpecTest {
 protected:
  void SetUp() override {
    SchedulerSpecTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    auto g = GgufFile::Open(testing::SharedPath("models/stories260K/stories260K-f32.gguf"));
    ASSERT_TRUE(g.ok()) << g.status().message();
    draft_g_.emplace(std::move(*g));
    auto m = LlamaModel::Load(*draft_g_);
    ASSERT_TRUE(m.ok()) << m.status().message();
    draft_.emplace(std::move(*m));
  }
  std::optional<GgufFile> draft_g_;
  std::optional<LlamaModel> draft_;
};

TEST_F(SchedulerDraftModelTest, GreedyDraftsAreStillPlainServing) {
  std::vector<GenerationRequest> reqs;
  for (const char* p : kPrompts) reqs.push_back(Req(p, 48));
  reqs.push_back(Req(kPrompts[3], 40, 1.1f));
  GenerationRequest stop = Req(kPrompts[0], 64);
  stop.stop = {Plain({stop}, 256)[0].text.substr(30, 4)};
  reqs.push_back(stop);
  const std::vector<Result> want = Plain(reqs, 256);
  EXPECT_EQ(want.back().done.finish_reason, "stop");
  int64_t drafted = 0, accepted = 0;
  for (auto [slots, max, adaptive] : {std::tuple{1, 16, true}, std::tuple{4, 4, false}}) {
    SchedulerOptions o{.n_slots = slots, .n_ctx = 256, .threads = 2};
    o.spec = SpeculativeOptions{.draft = &*draft_, .draft_max = max, .adaptive = adaptive};
    const std::vector<Result> got = Serve(o, reqs);
    ExpectSame(got, want, fmt::format("draft model, {} slots, draft-max {}", slots, max));
    for (const Result& r : got) {
      drafted += r.done.drafted;
      accepted += r.done.accepted;
    }
  }
  EXPECT_GT(accepted, drafted / 5) << "stories260K agrees with stories5M often (" << accepted << "/" << drafted << ")";
}

TEST_F(SchedulerDraftModelTest, SeededSamplingReproducesItsText) {
  GenerationRequest r = Req(kPrompts[3], 48);
  r.sampling.temp = 0.8f;
  r.sampling.seed = 4321;
  SchedulerOptions o{.n_slots = 3, .n_ctx = 256, .threads = 2};
  o.spec = SpeculativeOptions{.draft = &*draft_, .draft_max = 6};
  const Result a = Serve(o, {r})[0];
  EXPECT_FALSE(a.tokens.empty());
  EXPECT_GT(a.done.drafted, 0);
  GenerationRequest other = Req(kPrompts[1], 40);
  other.sampling.temp = 1.0f;
  other.sampling.seed = 8;
  const std::vector<Result> b = Serve(o, {other, r, Req(kPrompts[2], 30)});
  EXPECT_EQ(b[1].tokens, a.tokens) << "the same seed gives the same text beside other requests";
}

}  // namespace
}  // namespace lowbit

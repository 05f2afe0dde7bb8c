// Speculative decoding: greedy text identical to plain decoding, token for token, with prompt lookup
// and with a draft model, over several prompts (repetitive ones included), weight types, draft
// lengths and context limits; the draft model's vocabulary checked; prompt lookup and the draft
// length controller on their own. The sampling rule is tested in tests/sampling/speculative_accept_test.cc.
#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "lowbit/engine/generate.h"
#include "lowbit/engine/prompt_lookup.h"
#include "lowbit/engine/speculative.h"
#include "lowbit/formats/gguf_vocab.h"
#include "test_data.h"

namespace lowbit {
namespace {

struct Loaded {
  std::optional<GgufFile> file;
  std::optional<LlamaModel> model;
  Vocab vocab;
};

Loaded Load(const std::string& rel) {
  Loaded l;
  auto g = GgufFile::Open(testing::SharedPath(rel));
  EXPECT_TRUE(g.ok()) << g.status().message();
  if (!g.ok()) return l;
  l.file.emplace(std::move(*g));
  auto m = LlamaModel::Load(*l.file);
  EXPECT_TRUE(m.ok()) << m.status().message();
  if (m.ok()) l.model.emplace(std::move(*m));
  auto v = VocabFromGguf(*l.file);
  EXPECT_TRUE(v.ok());
  if (v.ok()) l.vocab = std::move(*v);
  return l;
}

const char* kPrompts[] = {
    "Once upon a time",
    // Repetitive: a story told twice, to be continued (prompt lookup's case).
    "Lily had a red ball. She liked to play with the ball in the park. One day the ball rolled away. "
    "Lily had a red ball. She liked to play with the ball in the park. One day",
    "Tom said: \"I want to play. I want to play. I want to play.\" Tom said:",
    "The cat sat on the mat. The dog sat on the log. The cat",
};

GenerateStats Gen(const Loaded& l, const std::string& prompt, int64_t n, const SpeculativeOptions& spec, float repeat_penalty = 1.0f,
                  int64_t n_ctx = 0, int threads = 1) {
  GenerateOptions o;
  o.prompt = prompt;
  o.n_predict = n;
  o.n_ctx = n_ctx;
  o.threads = threads;
  o.sampling.temp = 0;
  o.sampling.repeat_penalty = repeat_penalty;
  o.spec = spec;
  auto st = Generate(*l.model, l.vocab, o, nullptr);
  EXPECT_TRUE(st.ok()) << st.status().message();
  return st.ok() ? *st : GenerateStats{};
}

void ExpectSameAsPlain(const Loaded& target, const SpeculativeOptions& spec, int64_t n, const char* what, int64_t* drafted,
                       int64_t* accepted) {
  for (const char* prompt : kPrompts) {
    for (float penalty : {1.0f, 1.1f}) {
      const GenerateStats plain = Gen(target, prompt, n, {}, penalty);
      const GenerateStats fast = Gen(target, prompt, n, spec, penalty);
      ASSERT_FALSE(plain.generated.empty());
      EXPECT_EQ(fast.generated, plain.generated) << what << ", prompt: " << prompt << ", penalty " << penalty;
      EXPECT_EQ(fast.stopped_at_eos, plain.stopped_at_eos) << what;
      EXPECT_LE(fast.accepted, fast.drafted);
      if (!fast.stopped_at_eos) {
        EXPECT_EQ(fast.forwards + 1 + fast.accepted, static_cast<int64_t>(fast.generated.size()))
            << what << ": every forward yields its accepted drafts and one token more";
      }
      if (spec.lookup) {
        EXPECT_GE(fast.forwards, PromptLookupBound(plain.prompt_tokens, plain.generated, spec.draft_max))
            << what << ": prompt lookup drafts only pairs the text has shown";
      }
      *drafted += fast.drafted;
      *accepted += fast.accepted;
    }
  }
}

class SpeculativeGreedy : public ::testing::TestWithParam<const char*> {};

TEST_P(SpeculativeGreedy, LookupIsPlainDecoding) {
  LOWBIT_REQUIRE_SHARED();
  const Loaded t = Load(GetParam());
  ASSERT_TRUE(t.model.has_value());
  int64_t drafted = 0, accepted = 0;
  for (auto [max, adaptive] : {std::pair{16, true}, std::pair{1, false}, std::pair{5, false}}) {
    SpeculativeOptions s{.lookup = true, .draft_max = max, .adaptive = adaptive};
    ExpectSameAsPlain(t, s, 80, "lookup", &drafted, &accepted);
  }
  EXPECT_GT(accepted, 100) << "the repetitive prompts are drafted and accepted (" << accepted << "/" << drafted << ")";
}

// Target and draft: the same vocabulary, other weights.
struct Pair {
  const char* target;
  const char* draft;
};
class SpeculativeDraftModel : public ::testing::TestWithParam<Pair> {};

TEST_P(SpeculativeDraftModel, DraftModelIsPlainDecoding) {
  LOWBIT_REQUIRE_SHARED();
  const Loaded t = Load(GetParam().target), d = Load(GetParam().draft);
  ASSERT_TRUE(t.model.has_value() && d.model.has_value());
  ASSERT_TRUE(CheckDraftVocabulary("target", *t.model, t.vocab, "draft", *d.model, d.vocab).ok());
  int64_t drafted = 0, accepted = 0;
  for (int max : {3, 16}) {
    SpeculativeOptions s{.draft = &*d.model, .draft_max = max, .draft_min = max == 3 ? 2 : 0};
    ExpectSameAsPlain(t, s, 64, "draft model", &drafted, &accepted);
  }
  EXPECT_GT(accepted, drafted / 5) << "the draft agrees with the model often (" << accepted << "/" << drafted << ")";
}

INSTANTIATE_TEST_SUITE_P(Models, SpeculativeGreedy,
                         ::testing::Values("models/stories5M/stories5M-f32.gguf", "models/stories5M/llamacpp/stories5M-q4_0.gguf",
                                           "models/stories5M/llamacpp/stories5M-q4_k_m.gguf",
                                           "models/stories260K/stories260K-f32.gguf"));
INSTANTIATE_TEST_SUITE_P(Models, SpeculativeDraftModel,
                         ::testing::Values(Pair{"models/stories5M/stories5M-f32.gguf", "models/stories260K/stories260K-f32.gguf"},
                                           Pair{"models/stories5M/stories5M-f32.gguf", "models/stories5M/llamacpp/stories5M-q2_k.gguf"},
                                           Pair{"models/stories5M/llamacpp/stories5M-q8_0.gguf", "models/stories5M/llamacpp/stories5M-q4_0.gguf"},
                                           Pair{"models/stories260K/stories260K-f32.gguf", "models/stories260K/stories260K-q5_0-mix.gguf"}));

TEST(Speculative, StopsWhereThePlainLoopStops) {
  // The context's end and n_predict end generation at the same token, with any draft length.
  LOWBIT_REQUIRE_SHARED();
  const Loaded t = Load("models/stories5M/stories5M-f32.gguf");
  ASSERT_TRUE(t.model.has_value());
  const char* prompt = kPrompts[1];
  for (int64_t n_ctx : {int64_t{70}, int64_t{85}}) {
    const GenerateStats plain = Gen(t, prompt, 1000, {}, 1.0f, n_ctx);
    for (int max : {4, 16}) {
      const GenerateStats fast = Gen(t, prompt, 1000, {.lookup = true, .draft_max = max, .adaptive = false}, 1.0f, n_ctx);
      EXPECT_EQ(fast.generated, plain.generated) << "n_ctx " << n_ctx;
    }
  }
  for (int64_t n : {1, 2, 7}) {
    EXPECT_EQ(Gen(t, prompt, n, {.lookup = true, .adaptive = false}).generated, Gen(t, prompt, n, {}).generated) << n;
  }
  // Two threads: the same tokens as one (and as plain decoding on two).
  EXPECT_EQ(Gen(t, prompt, 48, {.lookup = true}, 1.0f, 0, 2).generated, Gen(t, prompt, 48, {}, 1.0f, 0, 2).generated);
}

TEST(Speculative, SamplingRunsAndKeepsCounts) {
  LOWBIT_REQUIRE_SHARED();
  const Loaded t = Load("models/stories260K/stories260K-f32.gguf"), d = Load("models/stories260K/stories260K-q5_0-mix.gguf");
  ASSERT_TRUE(t.model.has_value() && d.model.has_value());
  for (bool lookup : {true, false}) {
    GenerateOptions o;
    o.prompt = kPrompts[1];
    o.n_predict = 60;
    o.threads = 1;
    o.sampling.seed = 5;
    o.spec = lookup ? SpeculativeOptions{.lookup = true} : SpeculativeOptions{.draft = &*d.model};
    auto a = Generate(*t.model, t.vocab, o, nullptr), b = Generate(*t.model, t.vocab, o, nullptr);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->generated, b->generated) << "the seed fixes the text (the draft length does not depend on timing)";
    EXPECT_LE(a->accepted, a->drafted);
    for (int32_t tok : a->generated) EXPECT_TRUE(tok >= 0 && tok < t.model->config().n_vocab);
  }
}

TEST(Speculative, DraftWithAnotherVocabularyIsRefused) {
  LOWBIT_REQUIRE_SHARED();
  const Loaded t = Load("models/stories5M/stories5M-f32.gguf"), d = Load("models/stories260K/stories260K-f32.gguf");
  ASSERT_TRUE(t.model.has_value() && d.model.has_value());
  // stories260K and stories5M share the tok512 vocabulary.
  EXPECT_TRUE(CheckDraftVocabulary("stories5M-f32.gguf", *t.model, t.vocab, "stories260K-f32.gguf", *d.model, d.vocab).ok());
  Vocab bigger = d.vocab;
  bigger.tokens.push_back("extra");
  const Status s = CheckDraftVocabulary("stories5M-f32.gguf", *t.model, t.vocab, "other.gguf", *d.model, bigger);
  ASSERT_FALSE(s.ok());
  const std::string m(s.message());
  EXPECT_NE(m.find("other.gguf"), std::string::npos) << m;
  EXPECT_NE(m.find("stories5M-f32.gguf"), std::string::npos) << m;
  EXPECT_NE(m.find("513 tokens"), std::string::npos) << m;
  EXPECT_NE(m.find("512 tokens"), std::string::npos) << m;
  EXPECT_EQ(m.find('\n'), std::string::npos);
  // Same size, one token renamed.
  Vocab other = t.vocab;
  other.tokens[300] = "renamed";
  const Status s2 = CheckDraftVocabulary("a.gguf", *t.model, t.vocab, "b.gguf", *t.model, other);
  ASSERT_FALSE(s2.ok());
  EXPECT_NE(std::string(s2.message()).find("token 300"), std::string::npos) << s2.message();
}

TEST(PromptLookup, DraftsTheContinuationOfARepeatedSpan) {
  PromptLookup l;
  const std::vector<int32_t> text = {5, 6, 7, 8, 9, 10, 11, 1, 2, 5, 6, 7};
  l.Add(text);
  std::vector<int32_t> d;
  l.Draft(4, 0, &d);
  EXPECT_EQ(d, (std::vector<int32_t>{8, 9, 10, 11}));
  l.Draft(2, 0, &d);
  EXPECT_EQ(d, (std::vector<int32_t>{8, 9}));
  PromptLookup none;
  none.Add(std::vector<int32_t>{1, 2, 3, 4});
  none.Draft(4, 0, &d);
  EXPECT_TRUE(d.empty()) << "nothing repeats: no draft";
}

TEST(PromptLookup, DraftsWhileTheWholeDraftIsLikelyEnough) {
  PromptLookup l;
  l.Add(std::vector<int32_t>{5, 6, 7, 8, 9, 10, 11, 1, 2, 5, 6, 7});
  // 8 follows a match of 3 (prior 0.7), 9, 10 and 11 matches of 4 (0.8 each).
  EXPECT_DOUBLE_EQ(l.Confidence(3), 0.7);
  EXPECT_DOUBLE_EQ(l.Confidence(4), 0.8);
  std::vector<int32_t> d;
  l.Draft(8, 0.5, &d);
  EXPECT_EQ(d, (std::vector<int32_t>{8, 9})) << "0.7, 0.56, then 0.448 < 0.5";
  l.Draft(8, 0.75, &d);
  EXPECT_TRUE(d.empty());
  // Checks teach it: a fully accepted draft of 4-token matches raises their rate; a rejected 1-token
  // match lowers that one's.
  l.Draft(4, 0, &d);
  l.Checked(4, 4);
  EXPECT_DOUBLE_EQ(l.Confidence(4), (3 + 4 * 0.8) / (3 + 4));
  EXPECT_DOUBLE_EQ(l.Confidence(3), (1 + 4 * 0.7) / (1 + 4));
  PromptLookup once;
  once.Add(std::vector<int32_t>{1, 2, 3, 1});
  once.Draft(4, 0.15, &d);
  EXPECT_EQ(d, (std::vector<int32_t>{2})) << "2 after a match of one (0.2), 3 after 1 2 would make 0.1";
  once.Checked(0, 0);
  EXPECT_DOUBLE_EQ(once.Confidence(1), 0.2) << "a dropped draft teaches nothing";
  once.Draft(4, 0.15, &d);
  once.Checked(1, 0);
  EXPECT_DOUBLE_EQ(once.Confidence(1), 0.8 / 5);
  once.Draft(4, 0.17, &d);
  EXPECT_TRUE(d.empty());
}

TEST(PromptLookup, BoundDraftsWhatFollowedBefore) {
  // Text 1 2 3 4 | 9 1 2 3 4 9 7: the first token comes from the prompt's forward; after 9 nothing
  // followed 9 before (a plain step); then 1 2 3 4 each followed its predecessor before (4 drafts
  // accepted, and 9 from the same forward); 7 never followed 9.
  const std::vector<int32_t> prompt = {1, 2, 3, 4}, gen = {9, 1, 2, 3, 4, 9, 7};
  EXPECT_EQ(PromptLookupBound(prompt, gen, 16), 2);
  EXPECT_EQ(PromptLookupBound(prompt, gen, 4), 2);
  EXPECT_EQ(PromptLookupBound(prompt, gen, 2), 3) << "drafts of 2: 1 2, then 3 4, then 9";
  EXPECT_EQ(PromptLookupBound(prompt, gen, 0), 6) << "no drafts: plain decoding's forwards";
  const std::vector<int32_t> fresh = {5, 6, 7, 8, 10};
  EXPECT_EQ(PromptLookupBound(prompt, fresh, 16), 4) << "nothing repeats";
  EXPECT_EQ(PromptLookupBound(prompt, std::vector<int32_t>{9}, 16), 0);
  EXPECT_EQ(PromptLookupBound(prompt, std::vector<int32_t>{}, 16), 0);
  // One token repeated: after two of them every next one is a pair seen before.
  EXPECT_EQ(PromptLookupBound(prompt, std::vector<int32_t>(21, 3), 5), 1 + 3 + 1)
      << "a plain step, 3 forwards of 5 drafts each, and the last token alone";
}

// A timed round of `drafted` tokens taking `seconds`, after the first step of that size, whose
// time DraftLength does not count (it allocates the size's scratch).
void Timed(DraftLength& l, int drafted, int accepted, double seconds, double draft_s = 0) {
  l.Update(drafted, accepted, 50 * seconds, draft_s);
  l.Update(drafted, accepted, seconds, draft_s);
}

TEST(DraftLength, MinDraftProbIsTheAddedCostOfADraftedToken) {
  // Without timing a checked token costs 0.1 of a step and a drafted one the given ratio.
  EXPECT_NEAR(DraftLength(0, 8, true, false, 0.0).MinDraftProb(4), 0.1, 1e-12);
  EXPECT_NEAR(DraftLength(0, 8, true, false, 0.25).MinDraftProb(4), 0.35, 1e-12);
  EXPECT_EQ(DraftLength(0, 8, false).MinDraftProb(8), 0.0) << "--draft-fixed drafts every match";
  DraftLength timed(0, 8, true);
  Timed(timed, 0, 0, 1e-3);
  Timed(timed, 4, 2, 1.4e-3);
  EXPECT_NEAR(timed.MinDraftProb(4), 0.1, 1e-9) << "(1.4 - 1) / 4 of a 1 ms step";
  EXPECT_NEAR(timed.MinDraftProb(8), 0.1, 1e-9) << "9 tokens not timed: the largest timed batch below, 5";
  Timed(timed, 1, 0, 1.6e-3);
  EXPECT_NEAR(timed.MinDraftProb(1), 0.6, 1e-9) << "a check of 2 tokens took 1.6 steps";
  EXPECT_NEAR(timed.MinDraftProb(3), 0.6, 1e-9) << "4 not timed: from 2";
  DraftLength drafting(0, 8, true);
  Timed(drafting, 0, 0, 1e-3);
  drafting.Update(4, 4, 1, 0.4e-3);  // the first step of 5 tokens: its time is not counted
  drafting.Update(4, 4, 1.4e-3, 0.4e-3);
  EXPECT_NEAR(drafting.MinDraftProb(4), 0.1 + 0.1, 1e-9) << "plus drafting, 0.1 ms a token";
  EXPECT_NEAR(DraftLength(0, 8, true).MinDraftProb(4), 0.1, 1e-12) << "nothing timed yet";
}

TEST(DraftLength, ProbesStopAfterFailingInARowWhenTold) {
  // Drafts never accepted: plain steps with a probe every 16th round; with GiveUpAfterFailedProbes(2)
  // the probes stop after two that accept nothing, until Restart.
  const auto probes = [](DraftLength& l, int rounds) {
    int n = 0;
    for (int i = 0; i < rounds; ++i) {
      const int k = l.Next();
      n += k > 0 ? 1 : 0;
      l.Update(k, 0, 1e-3 * (1 + 0.3 * k), 0);
    }
    return n;
  };
  DraftLength keeps(0, 8, true), gives_up(0, 8, true);
  gives_up.GiveUpAfterFailedProbes(2);
  probes(keeps, 40);  // the accept rate learns that drafts fail
  probes(gives_up, 40);
  EXPECT_GE(probes(keeps, 160), 9) << "a probe every 16 rounds";
  EXPECT_LE(probes(gives_up, 160), 2);
  EXPECT_EQ(probes(gives_up, 160), 0);
  gives_up.Restart();
  EXPECT_GE(probes(gives_up, 20), 1) << "a new text probes again";
  // Drafts of which one token is accepted now and then keep probing alive.
  DraftLength lucky(0, 8, true);
  lucky.GiveUpAfterFailedProbes(2);
  int drafted = 0;
  for (int i = 0; i < 200; ++i) {
    const int k = lucky.Next();
    drafted += k > 0 ? 1 : 0;
    lucky.Update(k, k > 0 ? 1 : 0, 1e-3 * (1 + 0.3 * k), 0);
  }
  EXPECT_GE(drafted, 9);
}

TEST(DraftLength, ASlowStepDoesNotMakeASizeDear) {
  DraftLength l(0, 8, true);
  l.Update(4, 4, 30e-3, 0);  // the size's first step (allocation, new pages)
  EXPECT_DOUBLE_EQ(l.BatchCost(5), 1.4) << "not counted: still the guess, 1 + 0.1 x 4 of a step of unknown time";
  l.Update(4, 4, 1.4e-3, 0);
  EXPECT_DOUBLE_EQ(l.BatchCost(5), 1.4e-3);
  l.Update(4, 4, 9e-3, 0);  // preempted
  EXPECT_LE(l.BatchCost(5), 1.05 * 1.4e-3 + 1e-12);
  l.Update(4, 4, 1.2e-3, 0);
  EXPECT_DOUBLE_EQ(l.BatchCost(5), 1.2e-3) << "a faster sample is taken at once";
  for (int i = 0; i < 12; ++i) l.Update(4, 4, 2e-3, 0);  // a genuine rise
  EXPECT_DOUBLE_EQ(l.BatchCost(5), 2e-3) << "comes through, 5% a sample";
}

TEST(DraftLength, SizesFollowThePlainStepAsTheMachineWarmsUp) {
  // A server's first steps are slow: a 5-token check timed at 2.5 plain steps of then stays 2.5 plain
  // steps of now, not its old time.
  DraftLength l(0, 8, true);
  Timed(l, 0, 0, 2e-3);
  Timed(l, 4, 4, 5e-3);
  for (int i = 0; i < 40; ++i) l.Update(0, 0, 0.4e-3, 0);
  EXPECT_NEAR(l.BatchCost(1), 0.4e-3, 1e-12);
  EXPECT_NEAR(l.BatchCost(5), 1e-3, 1e-12);
}

TEST(DraftLength, OtherSequencesInTheBatchCount) {
  // Every draft accepted, each checked token adds 0.3 of a step: alone, long drafts pay (9 tokens
  // for 3.4 steps); beside 3 other sequences, whose step a drafted row slows too, none does
  // (k = 1: 5 tokens for 1.3 steps, against 4 for 1).
  DraftLength l(0, 8, true);
  l.Update(0, 0, 1e-3, 0);
  l.Update(0, 0, 1e-3, 0);
  for (int i = 0; i < 40; ++i) {
    const int k = i % 8 + 1;
    l.Update(k, k, 1e-3 * (1 + 0.3 * k), 0);
  }
  EXPECT_EQ(l.Next(), 8);
  EXPECT_EQ(l.Next(3), 0);
}

TEST(DraftLength, PlainStepsTimeTheStepDraftsAreWeighedAgainst) {
  // Timed: the first two rounds are plain steps, then one in every 64 drafting rounds, whatever the
  // accept rate; without timing (sampling) or with --draft-min above 0, none is forced.
  DraftLength l(0, 8, true);
  std::vector<int> ks;
  for (int i = 0; i < 140; ++i) {
    const int k = l.Next();
    ks.push_back(k);
    l.Update(k, k, 1e-3 * (1 + 0.05 * k), 0);  // every draft accepted, checks nearly free
  }
  EXPECT_EQ(ks[0], 0);
  EXPECT_EQ(ks[1], 0);
  EXPECT_GT(ks[2], 0);
  EXPECT_EQ(std::count(ks.begin(), ks.end(), 0), 4) << "2 first, then after 64 and 128 drafting rounds";
  EXPECT_EQ(ks[66], 0);
  EXPECT_GT(DraftLength(0, 8, true, false).Next(), 0);
  EXPECT_GT(DraftLength(1, 8, true).Next(), 0);
}

TEST(DraftLength, FollowsTheAcceptRate) {
  DraftLength fixed(0, 8, false);
  EXPECT_EQ(fixed.Next(), 8);
  DraftLength good(0, 16, true), bad(0, 16, true);
  for (int i = 0; i < 40; ++i) {
    good.Update(good.Next(), good.Next(), 1e-3 * (1 + 0.05 * good.Next()), 0);
    bad.Update(bad.Next(), 0, 1e-3 * (1 + 0.3 * bad.Next()), 0);
  }
  EXPECT_GT(good.accept_rate(), 0.9);
  EXPECT_LT(bad.accept_rate(), 0.3);
  EXPECT_GE(good.Next(), 8);
  // Drafts that are never accepted, where a drafted token costs 0.3 of a forward: plain steps, with a
  // draft every 16th round (its length the cheapest guess).
  int drafting = 0;
  for (int i = 0; i < 48; ++i) {
    const int k = bad.Next();
    drafting += k > 0 ? 1 : 0;
    bad.Update(k, 0, 1e-3 * (1 + 0.3 * k), 0);
  }
  EXPECT_GE(drafting, 2);
  EXPECT_LE(drafting, 4);
  DraftLength floor(3, 16, true);
  for (int i = 0; i < 40; ++i) floor.Update(3, 0, 1e-3, 0);
  EXPECT_EQ(floor.Next(), 3) << "never below --draft-min";
}

TEST(DraftLength, RestartForgetsTheAcceptRateKeepsTheCosts) {
  // Checks are costly beyond one token (each extra token 0.5 of a forward) and drafts always
  // accepted: the controller learns the costs.
  auto cost = [](int k) { return 1e-3 * (1 + 0.5 * k); };
  DraftLength l(0, 8, true);
  for (int i = 0; i < 90; ++i) {  // every size measured
    const int k = i % 9;
    l.Update(k, k, cost(k), 0);
  }
  const double t4 = l.BatchCost(4);
  EXPECT_GT(l.accept_rate(), 0.9);
  l.Restart();
  EXPECT_NEAR(l.accept_rate(), 2.0 / 3.0, 1e-9) << "back to the prior";
  EXPECT_EQ(l.BatchCost(4), t4) << "the measured costs stay";
  // With the prior rate (2/3) and these costs, k = 1 gives the most tokens per second
  // (1.11 x plain; k = 2: 1.06); a fresh controller guesses the costs optimistically and drafts more.
  EXPECT_EQ(l.Next(), 1);
  DraftLength fresh(0, 8, true);
  fresh.Update(0, 0, 1e-3, 0);
  fresh.Update(0, 0, 1e-3, 0);
  EXPECT_GT(fresh.Next(), 1);
}

}  // namespace
}  // namespace lowbit

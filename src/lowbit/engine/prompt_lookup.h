// Prompt lookup: drafts for speculative decoding from the text so far, without a second model.
// Every n-gram of the prompt and of the accepted text (n = ngram_min..ngram_max) counts the tokens
// that followed it; a draft continues the sequence with the most frequent follower (ties: the most
// recent) of its longest matching suffix, then extends the draft from its own end the same way. Code
// edits, summaries and retrieval answers repeat long spans of their prompt, which this finds at no
// cost beyond a hash lookup per drafted token.
//
// How far to draft is a cost question: each drafted token costs part of a step whether it is
// accepted or not. So each drafted token carries an estimate of the chance that it is accepted,
// given that the ones before it were: the accept rate of drafts that came from a match of the same
// length n, counted over this text's checks (Checked), starting from a prior measured on stories5M's
// texts (a match of one token is right ~20% of the time, of two ~50%, three ~70%, four ~80%). A
// draft stops where the chance that every token of it is accepted falls below the caller's
// `min_prob`, the cost of one more drafted token relative to a step's (DraftLength::MinDraftProb).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

namespace lowbit {

class PromptLookup {
 public:
  static constexpr int kMaxN = 4;
  explicit PromptLookup(int ngram_min = 1, int ngram_max = kMaxN);

  // Appends accepted tokens (the prompt first) and counts the n-grams they complete.
  void Add(std::span<const int32_t> tokens);
  const std::vector<int32_t>& tokens() const { return seq_; }
  // Up to `max` tokens continuing tokens(): fewer (or none) where no n-gram matches or where the
  // chance that the whole draft is accepted falls below min_prob (0: every match is drafted).
  void Draft(int max, double min_prob, std::vector<int32_t>* out);
  // The last draft's first `checked` tokens were checked (0: it was dropped): the first `accepted`
  // of them were accepted, the next one (if any) was not.
  void Checked(int checked, int accepted);
  // The estimated chance that a token drafted from a match of n tokens is accepted.
  double Confidence(int n) const;

 private:
  using Key = std::array<int32_t, kMaxN>;  // the n-gram, padded with -1
  struct KeyHash {
    size_t operator()(const Key& k) const;
  };
  struct Follower {
    int32_t token, count;
    int64_t last;  // position of its latest occurrence (ties go to the most recent)
  };
  using Table = std::unordered_map<Key, std::vector<Follower>, KeyHash>;
  // The most frequent follower of the last n tokens of tokens() followed by `draft`, or -1.
  int32_t Next(std::span<const int32_t> draft, int n) const;

  int n_min_, n_max_;
  std::vector<int32_t> seq_;
  std::array<Table, kMaxN + 1> tables_;  // [n]
  std::array<double, kMaxN + 1> hits_{}, tries_{};  // [n]: checked drafted tokens from matches of n, and accepted ones
  std::vector<int> draft_n_;  // [i]: the match length the last draft's token i came from
};

// The fewest check forwards in which any n-gram lookup drafter could have produced `generated` after
// `prompt`, with drafts of at most `draft_max` tokens. Such a drafter (PromptLookup, llama.cpp's
// llama-lookup and prompt-lookup decoding) drafts y after x only where x was followed by y somewhere
// in the text it knows (the prompt and the accepted tokens): its n-gram, whatever n, ends in x. The
// bound drafts, at each step, every following token of the true text for as long as each one has
// followed its predecessor before, and a forward yields its accepted drafts and one token more. The
// first generated token comes from the prompt's forward, as in GenerateSpeculative, so plain
// decoding takes generated.size() - 1 forwards, and no such drafter can run faster than
// (generated.size() - 1) / bound times plain decoding, even with checks that cost no more than a
// one-token step: what a model's text leaves a lookup drafter to find.
int64_t PromptLookupBound(std::span<const int32_t> prompt, std::span<const int32_t> generated, int draft_max);

}  // namespace lowbit

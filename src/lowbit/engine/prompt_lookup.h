// Prompt lookup: drafts for speculative decoding from the text so far, without a second model.
// Every n-gram of the prompt and of the accepted text (n = ngram_min..ngram_max) counts the tokens
// that followed it; a draft continues the sequence with the most frequent follower of its longest
// matching suffix, provided that n-gram was seen often enough and the follower is frequent enough
// among its followers (the thresholds of llama.cpp's llama-lookup context cache: for n = 1 at least
// 2 occurrences and 66%, n = 2 at least 2 and 50%, n >= 3 one occurrence and 50%), then extends the
// draft from its own end the same way. Code edits, summaries and retrieval answers repeat long spans
// of their prompt, which this finds at no cost beyond a hash lookup per drafted token.
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
  // Up to `max` tokens continuing tokens(); fewer (or none) where no n-gram is confident enough.
  void Draft(int max, std::vector<int32_t>* out) const;

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
  // The follower of the n tokens ending at seq[end) (seq = tokens() + draft), or -1.
  int32_t Next(const std::vector<int32_t>& seq, size_t end, int n) const;

  int n_min_, n_max_;
  std::vector<int32_t> seq_;
  std::array<Table, kMaxN + 1> tables_;  // [n]
};

}  // namespace lowbit

// Training sequences: T input tokens and the T next tokens each, drawn deterministically from the
// seed, the step and the sequence's index in the step, so a resumed run sees the same data.
//
// From a token stream (a tokenized text): windows of T + 1 tokens at random offsets; the first
// input token is replaced by BOS (when the vocabulary has one), as `lowbit perplexity` does at the
// start of each chunk. From whole sequences (generated text, BOS first): one sequence at random.
#pragma once

#include <cstdint>
#include <vector>

#include "lowbit/base/status.h"

namespace lowbit::train {

class TokenDataset {
 public:
  static Expected<TokenDataset> FromStream(std::vector<int32_t> tokens, int32_t bos, int64_t T);
  static Expected<TokenDataset> FromSequences(std::vector<std::vector<int32_t>> seqs, int64_t T);

  // Writes T inputs and T targets; returns the sequence drawn (FromSequences), or -1 for a stream.
  int64_t Get(uint64_t seed, int64_t step, int64_t index, int32_t* inputs, int32_t* targets) const;
  int64_t T() const { return T_; }
  // Distinct tokens available (the stream's length, or the sequences' total).
  int64_t size() const;

 private:
  std::vector<int32_t> stream_;
  std::vector<std::vector<int32_t>> seqs_;
  int32_t bos_ = -1;
  int64_t T_ = 0;
};

// SplitMix64: a small, good 64-bit mixer for the deterministic draws.
uint64_t Mix64(uint64_t x);

}  // namespace lowbit::train

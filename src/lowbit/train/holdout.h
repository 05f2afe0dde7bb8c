// Held-out selection for QAT: part of the training data is set aside before training starts, the
// student's mean KL to the teacher on it is measured every few steps (and at step 0, which is the
// post-training quantization itself), and the run writes the state with the lowest held-out KL.
//
// The held-out part comes from the training side only: the last `n` sequences of T tokens of the
// tokenized training text (the training windows are then drawn from the tokens before them and
// never reach them), or generated sequences the training never draws. The test text a user scores
// the output on plays no part.
#pragma once

#include <cstdint>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/train/optimizer.h"

namespace lowbit::train {

// Removes the last n * T tokens of `stream` and returns them as n sequences of T inputs [n][T],
// the first input of each replaced by `bos` when bos >= 0 (as `lowbit perplexity` starts a chunk).
// At least `keep` tokens must stay for training; the error says how many the text has.
Expected<std::vector<int32_t>> SplitHoldout(std::vector<int32_t>* stream, int64_t n, int64_t T, int32_t bos, int64_t keep);

// The lowest held-out loss offered so far and a copy of the parameters' values then.
class BestSnapshot {
 public:
  // Keeps a copy of the params' values when `loss` is lower than every earlier offer (ties keep the
  // earlier state); returns whether it did. A non-finite loss is never kept.
  bool Offer(int64_t step, double loss, const std::vector<Param*>& params);
  // Writes the kept values back (the params must be the ones offered, in the same order).
  void Restore(const std::vector<Param*>& params) const;
  bool empty() const { return step_ < 0; }
  int64_t step() const { return step_; }
  double loss() const { return loss_; }

 private:
  int64_t step_ = -1;
  double loss_ = 0;
  std::vector<std::vector<float>> values_;
};

}  // namespace lowbit::train

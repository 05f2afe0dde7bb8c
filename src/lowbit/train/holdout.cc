#include "lowbit/train/holdout.h"

#include <algorithm>
#include <cmath>

#include "lowbit/base/check.h"

namespace lowbit::train {

Expected<std::vector<int32_t>> SplitHoldout(std::vector<int32_t>* stream, int64_t n, int64_t T, int32_t bos, int64_t keep) {
  if (n < 0 || T < 1) return Errorf("held-out sequences and their length must be positive");
  const int64_t held = n * T, have = static_cast<int64_t>(stream->size());
  if (have - held < keep) {
    return Errorf("the training text has {} tokens: holding out {} sequences of {} leaves {}, fewer than the {} training needs; "
                  "give more text or a smaller --holdout",
                  have, n, T, have - held, keep);
  }
  std::vector<int32_t> out(stream->end() - held, stream->end());
  stream->resize(static_cast<size_t>(have - held));
  if (bos >= 0) {
    for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i * T)] = bos;
  }
  return out;
}

bool BestSnapshot::Offer(int64_t step, double loss, const std::vector<Param*>& params) {
  if (!std::isfinite(loss) || (!empty() && loss >= loss_)) return false;
  values_.resize(params.size());
  for (size_t i = 0; i < params.size(); ++i) values_[i] = params[i]->value;
  step_ = step;
  loss_ = loss;
  return true;
}

void BestSnapshot::Restore(const std::vector<Param*>& params) const {
  LOWBIT_CHECK(!empty() && params.size() == values_.size());
  for (size_t i = 0; i < params.size(); ++i) {
    LOWBIT_CHECK(params[i]->value.size() == values_[i].size());
    std::copy(values_[i].begin(), values_[i].end(), params[i]->value.begin());
  }
}

}  // namespace lowbit::train

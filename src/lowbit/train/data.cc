#include "lowbit/train/data.h"

#include <algorithm>

namespace lowbit::train {

uint64_t Mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

Expected<TokenDataset> TokenDataset::FromStream(std::vector<int32_t> tokens, int32_t bos, int64_t T) {
  if (T < 1) return Errorf("the training context must be at least 1 token");
  if (static_cast<int64_t>(tokens.size()) < T + 1) {
    return Errorf("the training text has {} tokens, fewer than one sequence of {} + 1; give more text or a smaller --ctx-size",
                  tokens.size(), T);
  }
  TokenDataset d;
  d.stream_ = std::move(tokens);
  d.bos_ = bos;
  d.T_ = T;
  return d;
}

Expected<TokenDataset> TokenDataset::FromSequences(std::vector<std::vector<int32_t>> seqs, int64_t T) {
  if (seqs.empty()) return Errorf("no training sequences");
  for (const auto& s : seqs) {
    if (static_cast<int64_t>(s.size()) != T + 1) return Errorf("a training sequence has {} tokens, expected {}", s.size(), T + 1);
  }
  TokenDataset d;
  d.seqs_ = std::move(seqs);
  d.T_ = T;
  return d;
}

int64_t TokenDataset::size() const {
  return stream_.empty() ? static_cast<int64_t>(seqs_.size()) * (T_ + 1) : static_cast<int64_t>(stream_.size());
}

int64_t TokenDataset::Get(uint64_t seed, int64_t step, int64_t index, int32_t* inputs, int32_t* targets) const {
  const uint64_t r = Mix64(Mix64(seed) ^ Mix64(static_cast<uint64_t>(step) * 0x100000001B3ull + static_cast<uint64_t>(index)));
  const int32_t* w;
  int64_t picked = -1;
  if (stream_.empty()) {
    picked = static_cast<int64_t>(r % seqs_.size());
    w = seqs_[static_cast<size_t>(picked)].data();
  } else {
    const uint64_t starts = stream_.size() - static_cast<uint64_t>(T_);  // windows of T + 1
    w = stream_.data() + r % starts;
  }
  std::copy(w, w + T_, inputs);
  std::copy(w + 1, w + T_ + 1, targets);
  if (!stream_.empty() && bos_ >= 0) inputs[0] = bos_;
  return picked;
}

}  // namespace lowbit::train

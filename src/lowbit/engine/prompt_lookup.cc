#include "lowbit/engine/prompt_lookup.h"

#include <algorithm>

namespace lowbit {
namespace {

// Minimum occurrences of the n-gram and minimum share (percent) of its best follower, by n - 1.
constexpr int kMinCount[PromptLookup::kMaxN] = {2, 2, 1, 1};
constexpr int kMinPercent[PromptLookup::kMaxN] = {66, 50, 50, 50};

}  // namespace

size_t PromptLookup::KeyHash::operator()(const Key& k) const {
  uint64_t h = 0x9e3779b97f4a7c15ull;
  for (int32_t t : k) h = (h ^ static_cast<uint32_t>(t)) * 0x100000001b3ull;
  return static_cast<size_t>(h ^ (h >> 29));
}

PromptLookup::PromptLookup(int ngram_min, int ngram_max)
    : n_min_(std::clamp(ngram_min, 1, kMaxN)), n_max_(std::clamp(ngram_max, n_min_, kMaxN)) {}

void PromptLookup::Add(std::span<const int32_t> tokens) {
  for (int32_t t : tokens) {
    const auto i = static_cast<int64_t>(seq_.size());
    for (int n = n_min_; n <= n_max_ && n <= i; ++n) {
      Key key;
      key.fill(-1);
      std::copy(seq_.end() - n, seq_.end(), key.begin());
      std::vector<Follower>& f = tables_[static_cast<size_t>(n)][key];
      auto it = std::find_if(f.begin(), f.end(), [t](const Follower& x) { return x.token == t; });
      if (it == f.end()) f.push_back({t, 1, i});
      else {
        ++it->count;
        it->last = i;
      }
    }
    seq_.push_back(t);
  }
}

int32_t PromptLookup::Next(const std::vector<int32_t>& seq, size_t end, int n) const {
  if (end < static_cast<size_t>(n)) return -1;
  Key key;
  key.fill(-1);
  std::copy(seq.begin() + static_cast<long>(end) - n, seq.begin() + static_cast<long>(end), key.begin());
  const Table& table = tables_[static_cast<size_t>(n)];
  const auto it = table.find(key);
  if (it == table.end()) return -1;
  const Follower* best = nullptr;
  int sum = 0;
  for (const Follower& f : it->second) {
    sum += f.count;
    if (best == nullptr || f.count > best->count || (f.count == best->count && f.last > best->last)) best = &f;
  }
  if (sum < kMinCount[n - 1] || 100 * best->count < kMinPercent[n - 1] * sum) return -1;
  return best->token;
}

void PromptLookup::Draft(int max, std::vector<int32_t>* out) const {
  out->clear();
  if (max <= 0 || seq_.empty()) return;
  std::vector<int32_t> seq = seq_;  // the text and the draft so far
  while (static_cast<int>(out->size()) < max) {
    int32_t next = -1;
    for (int n = n_max_; n >= n_min_ && next < 0; --n) next = Next(seq, seq.size(), n);
    if (next < 0) break;
    out->push_back(next);
    seq.push_back(next);
  }
}

}  // namespace lowbit

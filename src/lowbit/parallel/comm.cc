#include "lowbit/parallel/comm.h"

#include <cstring>

#include "lowbit/base/check.h"

namespace lowbit {

void LocalComm::AllGather(const float* in, int64_t n, float* out) {
  if (out != in) std::memmove(out, in, static_cast<size_t>(n) * sizeof(float));
}

class ThreadCommGroup::Rank final : public Comm {
 public:
  Rank(ThreadCommGroup* g, int r) : g_(g), r_(r) {}
  int rank() const override { return r_; }
  int size() const override { return g_->size_; }

  void AllReduceSum(float* data, int64_t n) override {
    // Every rank publishes its buffer; each sums a slice of all buffers into a private copy, then
    // writes the slice back everywhere once all have read.
    g_->slots_[r_] = data;
    g_->barrier_.arrive_and_wait();
    const int s = g_->size_;
    const int64_t begin = n * r_ / s, end = n * (r_ + 1) / s;
    std::vector<float> sum(static_cast<size_t>(end - begin), 0.0f);
    for (int q = 0; q < s; ++q) {
      const float* src = static_cast<const float*>(g_->slots_[q]);
      for (int64_t i = begin; i < end; ++i) sum[i - begin] += src[i];
    }
    g_->barrier_.arrive_and_wait();
    for (int q = 0; q < s; ++q) {
      float* dst = static_cast<float*>(const_cast<void*>(g_->slots_[q]));
      std::memcpy(dst + begin, sum.data(), sum.size() * sizeof(float));
    }
    g_->barrier_.arrive_and_wait();
  }

  void AllGather(const float* in, int64_t n, float* out) override {
    g_->slots_[r_] = in;
    g_->barrier_.arrive_and_wait();
    for (int q = 0; q < g_->size_; ++q) {
      if (out + q * n != g_->slots_[q]) std::memcpy(out + q * n, g_->slots_[q], static_cast<size_t>(n) * sizeof(float));
    }
    g_->barrier_.arrive_and_wait();
  }

  void Broadcast(void* data, size_t bytes, int root) override {
    if (r_ == root) g_->slots_[0] = data;
    g_->barrier_.arrive_and_wait();
    if (r_ != root) std::memcpy(data, g_->slots_[0], bytes);
    g_->barrier_.arrive_and_wait();
  }

 private:
  ThreadCommGroup* g_;
  int r_;
};

ThreadCommGroup::ThreadCommGroup(int size) : size_(size), barrier_(size), slots_(static_cast<size_t>(size)) {
  LOWBIT_CHECK(size >= 1);
  for (int r = 0; r < size; ++r) ranks_.push_back(std::make_unique<Rank>(this, r));
}
ThreadCommGroup::~ThreadCommGroup() = default;
Comm* ThreadCommGroup::rank(int r) { return ranks_.at(static_cast<size_t>(r)).get(); }

Expected<ShardRange> SplitDim(int64_t n, int64_t unit, int rank, int size) {
  if (size < 1 || rank < 0 || rank >= size) return Errorf("rank {} of {} is invalid", rank, size);
  if (unit <= 0 || n % unit != 0) return Errorf("dimension {} is not a multiple of {}", n, unit);
  const int64_t units = n / unit;
  if (units < size) return Errorf("dimension {} has {} parts of {}, fewer than {} ranks", n, units, unit, size);
  const int64_t u0 = units * rank / size, u1 = units * (rank + 1) / size;
  return ShardRange{u0 * unit, (u1 - u0) * unit};
}

}  // namespace lowbit

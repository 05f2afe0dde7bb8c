#include "lowbit/base/thread_pool.h"

#include <algorithm>

namespace lowbit {
namespace {

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

constexpr int kSpins = 4000;  // ~0.2 ms of pause instructions

}  // namespace

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0) n_threads = std::max(1u, std::thread::hardware_concurrency());
  regions_ = std::vector<Region>(static_cast<size_t>(n_threads));
  workers_.reserve(static_cast<size_t>(n_threads - 1));
  for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::RunChunks(int self) {
  const size_t threads = regions_.size();
  for (size_t k = 0; k < threads; ++k) {
    Region& r = regions_[(static_cast<size_t>(self) + k) % threads];
    size_t begin = r.next.load(std::memory_order_relaxed);
    while (begin < r.end) {
      // A whole grain while two are left, then half of what is left (whole min_grains).
      const size_t left = r.end - begin;
      const size_t size = left >= 2 * grain_ ? grain_ : std::max(min_grain_, left / 2 / min_grain_ * min_grain_);
      if (!r.next.compare_exchange_weak(begin, begin + size, std::memory_order_relaxed)) continue;  // begin reloaded
      (*fn_)(begin, std::min(r.end, begin + size));
      begin = r.next.load(std::memory_order_relaxed);
    }
  }
}

void ThreadPool::WorkerLoop(int self) {
  uint64_t seen = 0;
  for (;;) {
    // Spin first: the next job usually follows within microseconds.
    for (int i = 0; i < kSpins && generation_.load() == seen && !stop_.load(); ++i) CpuRelax();
    if (generation_.load() == seen && !stop_.load()) {
      std::unique_lock<std::mutex> lock(mu_);
      ++sleepers_;
      wake_.wait(lock, [&] { return stop_.load() || generation_.load() != seen; });
      --sleepers_;
    }
    if (stop_.load()) return;
    seen = generation_.load();
    RunChunks(self);
    if (active_.fetch_sub(1) == 1 && sleepers_.load() > 0) {
      std::lock_guard<std::mutex> lock(mu_);  // the caller may be between its check and its wait
      done_.notify_all();
    }
  }
}

void ThreadPool::ParallelFor(size_t n, FunctionRef<void(size_t, size_t)> fn, size_t grain, size_t min_grain) {
  if (n == 0) return;
  if (grain == 0) grain = std::max<size_t>(1, n / (4 * static_cast<size_t>(size())));
  if (min_grain == 0 || min_grain > grain) min_grain = grain;
  grain = (grain + min_grain - 1) / min_grain * min_grain;
  if (workers_.empty() || n <= grain) {
    fn(0, n);
    return;
  }
  fn_ = &fn;
  grain_ = grain;
  min_grain_ = min_grain;
  // Regions of whole chunks; the published generation below orders these stores before any reader.
  const size_t chunks = (n + grain - 1) / grain, threads = regions_.size();
  const size_t per = (chunks + threads - 1) / threads * grain;
  for (size_t t = 0; t < threads; ++t) {
    regions_[t].next.store(std::min(n, t * per), std::memory_order_relaxed);
    regions_[t].end = std::min(n, (t + 1) * per);
  }
  active_.store(static_cast<int>(workers_.size()));
  generation_.fetch_add(1);  // publishes the job (seq_cst)
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mu_);
    wake_.notify_all();
  }
  RunChunks(0);
  for (int i = 0; i < kSpins && active_.load() != 0; ++i) CpuRelax();
  if (active_.load() != 0) {
    std::unique_lock<std::mutex> lock(mu_);
    ++sleepers_;
    done_.wait(lock, [&] { return active_.load() == 0; });
    --sleepers_;
  }
  fn_ = nullptr;
}

}  // namespace lowbit

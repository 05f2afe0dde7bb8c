// ThreadPool: a fixed set of worker threads and ParallelFor over an index range.
//
// ParallelFor(n, fn) calls fn(begin, end) on disjoint chunks covering [0, n); the calling thread
// takes part, so a pool of size 1 runs everything inline with no synchronization. Work is handed
// out in chunks through an atomic counter (dynamic balance without per-item locking). Calls do not
// nest: fn must not call ParallelFor on the same pool. No allocation per call.
//
// Hand-off: workers and the caller spin briefly (about 0.2 ms) on atomics before sleeping on a
// condition variable. A decode step issues ~150 parallel products a few microseconds apart; a
// futex wake-up per product cost a third of the 2-thread speed-up on this VM (docs/PERFORMANCE.md).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "lowbit/base/function_ref.h"

namespace lowbit {

class ThreadPool {
 public:
  // n_threads counts the caller; 0 means the number of hardware threads.
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // grain: smallest chunk handed to one thread (0 = n / (4 * size()), at least 1).
  // `fn` is called as fn(begin, end); it is referenced, not copied (no allocation per call).
  void ParallelFor(size_t n, FunctionRef<void(size_t, size_t)> fn, size_t grain = 0);

 private:
  void WorkerLoop();
  void RunChunks();

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable done_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> active_{0};
  std::atomic<int> sleepers_{0};  // threads blocked (or about to block) on wake_ / done_
  std::atomic<bool> stop_{false};

  // The job in flight.
  const FunctionRef<void(size_t, size_t)>* fn_ = nullptr;
  size_t n_ = 0;
  size_t grain_ = 1;
  std::atomic<size_t> next_{0};
};

}  // namespace lowbit

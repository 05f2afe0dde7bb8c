// ThreadPool: a fixed set of worker threads and ParallelFor over an index range.
//
// ParallelFor(n, fn) calls fn(begin, end) on disjoint chunks covering [0, n); the calling thread
// takes part, so a pool of size 1 runs everything inline with no synchronization. [0, n) is cut
// into one contiguous region per thread, and each region is handed out in chunks through its own
// atomic counter: a thread takes the chunks of its region in order, then helps the others from the
// front of theirs (dynamic balance without per-item locking); a region's last chunks can shrink (see
// min_grain). In order matters to the decode kernels, which prefetch the rows after the ones they
// read: those are the thread's next rows, not another thread's (docs/PERFORMANCE.md). Calls do not
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

  // grain: the chunk handed to one thread (0 = n / (4 * size()), at least 1). min_grain (0 = grain):
  // near the end of a region the chunks shrink, each half of what is left there, down to min_grain,
  // so the threads finish together instead of one waiting out the other's last whole chunk. grain is
  // rounded up to a multiple of min_grain, and every chunk starts on a multiple of min_grain.
  // `fn` is called as fn(begin, end); it is referenced, not copied (no allocation per call).
  void ParallelFor(size_t n, FunctionRef<void(size_t, size_t)> fn, size_t grain = 0, size_t min_grain = 0);

 private:
  void WorkerLoop(int self);
  void RunChunks(int self);

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
  size_t grain_ = 1, min_grain_ = 1;
  struct alignas(64) Region {  // one cache line each: the threads' counters do not share lines
    std::atomic<size_t> next{0};
    size_t end = 0;
  };
  std::vector<Region> regions_;  // one per thread, the caller's first
};

}  // namespace lowbit

// The machine's read bandwidth, as lowbit's decode kernels can use it: `threads` threads each sum
// their part of a buffer much larger than the caches (512 MiB), held in 2 MiB pages as a model read
// into memory is. Each pass sums the buffer twice, prefetching 3 KiB ahead and without software
// prefetch, and keeps the faster: on the Intel hosts the loads without a prefetch were latency-bound,
// while on AMD Zen 4 the prefetch into L1 cost 7-15% against the hardware prefetcher alone
// (docs/PERFORMANCE.md, "The read probe on Zen 4"). `lowbit bench` runs it beside every speed figure
// and `lowbit advise` reports it and scales described machines by it.
#pragma once

#include <cstddef>

#include "lowbit/base/huge_page_buffer.h"
#include "lowbit/base/thread_pool.h"

namespace lowbit {

class ReadBandwidthProbe {
 public:
  explicit ReadBandwidthProbe(int threads, size_t bytes = size_t{512} << 20);
  // Reads the whole buffer twice (with and without software prefetch); returns the faster sweep's
  // GB/s (1e9 bytes per second).
  double Pass();

 private:
  double Sweep(bool prefetch);

  HugePageBuffer buf_;
  ThreadPool pool_;
};

}  // namespace lowbit

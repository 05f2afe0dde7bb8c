// The machine's read bandwidth, as lowbit's decode kernels can use it: `threads` threads each sum
// their part of a buffer much larger than the caches (512 MiB), prefetching 3 KiB ahead as the
// decode kernels do. `lowbit bench` runs it beside every speed figure and `lowbit advise` predicts
// decode speed from it.
#pragma once

#include <cstddef>

#include "lowbit/base/aligned_buffer.h"
#include "lowbit/base/thread_pool.h"

namespace lowbit {

class ReadBandwidthProbe {
 public:
  explicit ReadBandwidthProbe(int threads, size_t bytes = size_t{512} << 20);
  // Reads the whole buffer once; returns GB/s (1e9 bytes per second).
  double Pass();

 private:
  AlignedBuffer buf_;
  ThreadPool pool_;
};

}  // namespace lowbit

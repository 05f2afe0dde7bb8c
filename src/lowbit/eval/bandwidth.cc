#include "lowbit/eval/bandwidth.h"

#include <atomic>
#include <chrono>
#include <cstdint>

namespace lowbit {

ReadBandwidthProbe::ReadBandwidthProbe(int threads, size_t bytes) : buf_(bytes), pool_(threads) {
  auto words = buf_.As<uint64_t>();
  for (size_t i = 0; i < words.size(); ++i) words[i] = i;
}

double ReadBandwidthProbe::Pass() {
  const auto words = buf_.As<uint64_t>();
  std::atomic<uint64_t> total{0};
  const auto t0 = std::chrono::steady_clock::now();
  const size_t chunk = words.size() / static_cast<size_t>(pool_.size());
  pool_.ParallelFor(static_cast<size_t>(pool_.size()), [&](size_t b, size_t e) {
    for (size_t part = b; part < e; ++part) {
      uint64_t acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      const uint64_t* p = words.data() + part * chunk;
      for (size_t i = 0; i + 8 <= chunk; i += 8) {
        __builtin_prefetch(p + i + 384);  // 3 KiB ahead, as the kernels do: without it the loads are latency-bound
        for (int k = 0; k < 8; ++k) acc[k] += p[i + k];
      }
      total += acc[0] + acc[1] + acc[2] + acc[3] + acc[4] + acc[5] + acc[6] + acc[7];
    }
  }, 1);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  volatile uint64_t sink = total.load();  // the sums are used
  (void)sink;
  return static_cast<double>(chunk * static_cast<size_t>(pool_.size()) * 8) / s / 1e9;
}

}  // namespace lowbit

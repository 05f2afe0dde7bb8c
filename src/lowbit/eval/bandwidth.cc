#include "lowbit/eval/bandwidth.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>

#include "lowbit/base/check.h"

namespace lowbit {

ReadBandwidthProbe::ReadBandwidthProbe(int threads, size_t bytes) : pool_(threads) {
  auto buf = HugePageBuffer::Allocate(bytes);
  LOWBIT_CHECK_MSG(buf.ok(), "read probe: {}", buf.status().message());
  buf_ = std::move(*buf);
  auto* words = reinterpret_cast<uint64_t*>(buf_.data());
  for (size_t i = 0; i < buf_.size() / 8; ++i) words[i] = i;
}

double ReadBandwidthProbe::Sweep(bool prefetch) {
  const auto* words = reinterpret_cast<const uint64_t*>(buf_.data());
  std::atomic<uint64_t> total{0};
  const auto t0 = std::chrono::steady_clock::now();
  const size_t chunk = buf_.size() / 8 / static_cast<size_t>(pool_.size());
  pool_.ParallelFor(static_cast<size_t>(pool_.size()), [&](size_t b, size_t e) {
    for (size_t part = b; part < e; ++part) {
      uint64_t acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      const uint64_t* p = words + part * chunk;
      for (size_t i = 0; i + 8 <= chunk; i += 8) {
        if (prefetch) __builtin_prefetch(p + i + 384);  // 3 KiB ahead, as the kernels do
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

double ReadBandwidthProbe::Pass() { return std::max(Sweep(true), Sweep(false)); }

}  // namespace lowbit

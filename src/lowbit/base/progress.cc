#include "lowbit/base/progress.h"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

namespace lowbit {

std::string HumanBytes(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", v, kUnits[u]);
}

bool Progress::StderrIsTerminal() { return ::isatty(STDERR_FILENO) == 1; }

Progress::Progress(std::string label, size_t total_items, uint64_t total_bytes, bool enabled)
    : label_(std::move(label)),
      total_items_(total_items),
      total_bytes_(total_bytes),
      live_(enabled && StderrIsTerminal()),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_ - std::chrono::seconds(1)) {}

Progress::~Progress() { Finish(); }

void Progress::Update(size_t done_items, uint64_t done_bytes, const std::string& what) {
  if (!live_) return;
  auto now = std::chrono::steady_clock::now();
  if (done_items < total_items_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  double secs = std::chrono::duration<double>(now - start_).count();
  double rate = secs > 0 ? static_cast<double>(done_bytes) / secs : 0.0;
  std::string eta = "?";
  if (rate > 0 && total_bytes_ >= done_bytes) {
    eta = fmt::format("{:.0f}s", static_cast<double>(total_bytes_ - done_bytes) / rate);
  }
  std::fprintf(stderr, "\r\033[K%s: %zu/%zu  %s/%s  %s/s  ETA %s  %s", label_.c_str(), done_items,
               total_items_, HumanBytes(done_bytes).c_str(), HumanBytes(total_bytes_).c_str(),
               HumanBytes(static_cast<uint64_t>(rate)).c_str(), eta.c_str(), what.c_str());
  std::fflush(stderr);
}

void Progress::Finish() {
  if (!live_ || finished_) return;
  finished_ = true;
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
}

}  // namespace lowbit

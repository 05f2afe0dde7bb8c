// Progress: "what i of n, bytes, rate, ETA" for long work. Redraws one line on a terminal (stderr
// is a tty), at most ten times a second; prints nothing when stderr is piped or when disabled.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace lowbit {

class Progress {
 public:
  // total_items: e.g. tensors; total_bytes: bytes of input the items cover (0 if unknown).
  Progress(std::string label, size_t total_items, uint64_t total_bytes, bool enabled = true);
  ~Progress();

  // Item `done_items` finished, `done_bytes` processed so far; `what` names the current item.
  void Update(size_t done_items, uint64_t done_bytes, const std::string& what);
  void Finish();

  static bool StderrIsTerminal();

 private:
  std::string label_;
  size_t total_items_;
  uint64_t total_bytes_;
  bool live_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

// "1.5 MiB" style.
std::string HumanBytes(uint64_t bytes);

}  // namespace lowbit

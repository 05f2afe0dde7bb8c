// The check `lowbit run`, `lowbit perplexity` and `lowbit serve` make before loading a model: the
// memory it will hold (advise/memory.h, from the GGUF's header: no tensor data is read) against what
// this process may use now (MemAvailable, narrowed by a cgroup limit). A model that will not fit is
// refused with one line that says what it needs, what is available, and what would fit: a smaller
// context, an F16 cache, a mapping instead of a copy, or the model quantized to a smaller type.
#pragma once

#include <cstdint>
#include <string>

#include "lowbit/advise/memory.h"
#include "lowbit/base/mapped_file.h"
#include "lowbit/base/status.h"

namespace lowbit {

struct FitRequest {
  std::string model;           // GGUF path
  int64_t n_ctx = 0;           // 0: the model's training context
  int threads = 0;
  bool kv_f16 = false;
  int slots = 1;               // sequences with their own KV cache (serve's parallel slots)
  int64_t logits_tokens = 1;   // tokens whose logits are kept (perplexity: a chunk, ctx - 1); -1: n_ctx - 1
  Residency residency = Residency::kAuto;
};

struct FitCheck {
  RunMemory memory;
  int64_t n_ctx = 0;
  uint64_t available = 0;
  bool fits = false;
  std::string suggestion;  // what would fit, when it does not
};

// The memory `r` needs and whether it fits now.
Expected<FitCheck> CheckFit(const FitRequest& r);
// CheckFit, then an error naming what would fit when it does not (errors reading the file too).
Status RequireFit(const FitRequest& r);

}  // namespace lowbit

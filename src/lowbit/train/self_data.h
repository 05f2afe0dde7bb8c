// LLM-QAT's data-free recipe (arXiv 2305.17888): training text the full-precision model generates
// itself. n sequences of T + 1 tokens, each started from BOS and sampled at temperature 1 from the
// full distribution (no top-k / top-p, so the data follows the model's own distribution), spread
// over `threads` sessions. Deterministic in the seed. With `teacher_logp`, the model's log-probabilities
// at every position ([n][T][n_vocab], fp16 bits) are kept as well: the generation computes them
// anyway, and distillation on these sequences then needs no teacher forward.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/model/llama.h"

namespace lowbit::train {

Expected<std::vector<std::vector<int32_t>>> SampleSequences(const LlamaModel& model, int32_t bos, int64_t n, int64_t T,
                                                            uint64_t seed, int threads,
                                                            const std::function<void(int64_t done)>& on_sequence = {},
                                                            std::vector<uint16_t>* teacher_logp = nullptr);

}  // namespace lowbit::train

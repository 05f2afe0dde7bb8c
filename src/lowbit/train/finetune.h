// `lowbit finetune`: QLoRA on the CPU. The base model stays frozen in its GGUF type (any type the
// engine runs: the forward multiplies by the quantized bytes exactly as `lowbit run` does, the
// backward by their F32 dequantization); low-rank adapters (A [r][in], B [out][r], B zero at the
// start, A uniform in +-1/sqrt(in) as PEFT initializes it; scale alpha / r) on the chosen
// projections are trained on next-token cross-entropy of a text, and written as a llama.cpp GGUF
// adapter (OUT.gguf) or a PEFT folder (any other OUT).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/numeric/ggml_type.h"
#include "lowbit/train/trainer.h"

namespace lowbit::train {

struct FinetuneOptions {
  std::string model, train_text, output;
  int64_t rank = 16;
  float alpha = 32.0f;
  std::vector<std::string> targets = {"q", "k", "v", "o", "gate", "up", "down"};  // and "output"
  GgmlType outtype = GgmlType::kF32;  // GGUF adapter tensors
  TrainConfig train;
  int threads = 0;
};

struct FinetuneReport {
  int64_t steps_run = 0, adapted = 0, trained_parameters = 0;
  double first_loss = 0, last_loss = 0, seconds = 0, tokens_per_s = 0;
  bool peft = false;
};

// The slot names --targets accepts: q k v o gate up down output (or q_proj ... lm_head).
Expected<std::vector<int>> ParseLoraTargets(const std::vector<std::string>& names);

Expected<FinetuneReport> RunFinetune(const FinetuneOptions& o, const std::function<void(const std::string&)>& log);

}  // namespace lowbit::train

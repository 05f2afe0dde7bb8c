// Flags shared by the training commands (qat, finetune) and the adapter flags of run, perplexity
// and serve (--lora F, --lora-scaled F S; several of each, applied --lora first, in order).
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "lowbit/train/lora_file.h"
#include "lowbit/train/trainer.h"

namespace lowbit::tools {

// The optimizer, schedule, batch and checkpoint flags; `c` holds the command's defaults.
inline void AddTrainOptions(CLI::App* sub, train::TrainConfig* c) {
  sub->add_option("--steps", c->steps, "optimizer steps")->check(CLI::Range(int64_t{1}, int64_t{1} << 30))->capture_default_str();
  sub->add_option("--batch", c->batch, "sequences per step")->check(CLI::Range(int64_t{1}, int64_t{1} << 20))->capture_default_str();
  sub->add_option("--micro-batch", c->micro_batch, "sequences per forward/backward (memory); must divide --batch")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  sub->add_option("-c,--ctx-size", c->ctx, "tokens per sequence")->check(CLI::Range(int64_t{2}, int64_t{1} << 20))->capture_default_str();
  sub->add_option("--lr", c->lr, "peak learning rate")->check(CLI::Range(0.0f, 10.0f))->capture_default_str();
  sub->add_option("--min-lr-ratio", c->min_lr_ratio, "final learning rate / peak (cosine decay)")->check(CLI::Range(0.0f, 1.0f))->capture_default_str();
  sub->add_option("--warmup", c->warmup, "steps of linear warmup")->check(CLI::Range(int64_t{0}, int64_t{1} << 30))->capture_default_str();
  sub->add_option("--weight-decay", c->adam.weight_decay, "AdamW weight decay (2-D weights)")->check(CLI::Range(0.0f, 1.0f))->capture_default_str();
  sub->add_option("--clip", c->clip, "gradient norm limit (0: none)")->check(CLI::Range(0.0f, 1e6f))->capture_default_str();
  sub->add_option("--seed", c->seed, "seed of the data order and initialization")->capture_default_str();
  sub->add_option("--checkpoint", c->checkpoint, "training-state file (default: OUT.ckpt)");
  sub->add_option("--checkpoint-every", c->checkpoint_every, "steps between checkpoints (0: only at the end)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30))->capture_default_str();
  sub->add_flag("--resume", c->resume, "continue from the checkpoint when it exists");
}

// --lora F and --lora-scaled F S (repeatable).
struct LoraFlags {
  std::vector<std::string> plain;
  std::vector<std::string> scaled;  // path, scale, path, scale, ...
  Expected<std::vector<train::LoraSpec>> Specs() const {
    std::vector<train::LoraSpec> out;
    for (const std::string& p : plain) out.push_back({p, 1.0f});
    for (size_t i = 0; i + 1 < scaled.size(); i += 2) {
      float s = 0;
      try {
        size_t used = 0;
        s = std::stof(scaled[i + 1], &used);
        if (used != scaled[i + 1].size()) throw std::invalid_argument("trailing");
      } catch (const std::exception&) {
        return Errorf("--lora-scaled {} {}: the scale must be a number", scaled[i], scaled[i + 1]);
      }
      out.push_back({scaled[i], s});
    }
    return out;
  }
};

inline void AddLoraOptions(CLI::App* sub, LoraFlags* f) {
  sub->add_option("--lora", f->plain, "LoRA adapter (GGUF file or PEFT folder) applied at run time; repeatable");
  sub->add_option("--lora-scaled", f->scaled, "adapter with a user scale: --lora-scaled FILE SCALE; repeatable")
      ->type_size(2)
      ->allow_extra_args(false);
}

}  // namespace lowbit::tools

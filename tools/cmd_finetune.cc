// `lowbit finetune -m BASE --train TEXT --lora-rank r --lora-alpha a [--targets q,k,v,o,gate,up,down]
//  -o ADAPTER.gguf|DIR [-t T]`: QLoRA on a frozen GGUF base of any type.
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "lowbit/train/finetune.h"
#include "train_flags.h"

namespace lowbit::tools {

void AddFinetune(CLI::App& app, Registry& r) {
  auto o = std::make_shared<train::FinetuneOptions>();
  o->train.steps = 300;
  o->train.batch = 8;
  o->train.micro_batch = 4;
  o->train.ctx = 256;
  o->train.lr = 1e-3f;
  o->train.warmup = 10;
  o->train.checkpoint_every = 50;
  auto quiet = std::make_shared<bool>(false);
  auto json = std::make_shared<bool>(false);
  auto outtype = std::make_shared<std::string>("f32");
  CLI::App* sub = app.add_subcommand("finetune", "Train a LoRA adapter on a frozen GGUF model of any type (QLoRA on the CPU)");
  sub->add_option("-m,--model", o->model, "base GGUF model (any type lowbit runs)")->required();
  sub->add_option("--train", o->train_text, "text to train on")->required();
  sub->add_option("-o,--output", o->output, "adapter: FILE.gguf (llama.cpp) or a folder (PEFT)")->required();
  sub->add_option("--lora-rank", o->rank, "rank r")->check(CLI::Range(int64_t{1}, int64_t{1} << 16))->capture_default_str();
  sub->add_option("--lora-alpha", o->alpha, "alpha (scale alpha / r)")->check(CLI::Range(1e-6f, 1e6f))->capture_default_str();
  sub->add_option("--targets", o->targets, "projections to adapt: q,k,v,o,gate,up,down,output")->delimiter(',')->capture_default_str();
  sub->add_option("--outtype", *outtype, "GGUF adapter tensor type")->check(CLI::IsMember({"f32", "f16", "bf16"}, CLI::ignore_case));
  sub->add_option("-t,--threads", o->threads, "threads (default: all)")->check(CLI::Range(0, 1024));
  sub->add_flag("-q,--quiet", *quiet, "no progress lines");
  sub->add_flag("--json", *json, "print the report as one JSON object on stdout");
  AddTrainOptions(sub, &o->train);
  r.Add(sub, [o, quiet, outtype, json]() -> Status {
    if (o->train.checkpoint.empty()) o->train.checkpoint = o->output + ".ckpt";
    o->outtype = FindGgmlTypeByName(*outtype)->type;
    const bool q = *quiet;
    LOWBIT_ASSIGN_OR_RETURN(train::FinetuneReport rep, train::RunFinetune(*o, [q](const std::string& line) {
      if (!q) std::fprintf(stderr, "%s\n", line.c_str());
    }));
    if (*json) {
      const nlohmann::json j = {{"output", o->output}, {"format", rep.peft ? "peft" : "gguf"}, {"adapted_weights", rep.adapted},
                                {"trained_parameters", rep.trained_parameters}, {"steps", rep.steps_run},
                                {"first_loss", rep.first_loss}, {"last_loss", rep.last_loss}, {"tokens_per_s", rep.tokens_per_s},
                                {"seconds", rep.seconds}};
      std::printf("%s\n", j.dump(2).c_str());
    }
    std::fprintf(stderr, "lowbit finetune: wrote %s (%s, %lld adapted weights, %lld parameters): %lld steps, loss %.4f -> %.4f, "
                 "%.0f tok/s, %.1f s\n", o->output.c_str(), rep.peft ? "PEFT folder" : "GGUF adapter", static_cast<long long>(rep.adapted),
                 static_cast<long long>(rep.trained_parameters), static_cast<long long>(rep.steps_run), rep.first_loss, rep.last_loss,
                 rep.tokens_per_s, rep.seconds);
    return OkStatus();
  });
}

}  // namespace lowbit::tools

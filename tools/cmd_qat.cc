// `lowbit qat -m MODEL --type TYPE_OR_MIX (--train TEXT | --self-distill) [--steps N] -o OUT.gguf [-t T]`, or
// `lowbit qat -m HF_DIR --format gptq --bits B --group-size G [--sym|--asym] ... -o OUT_DIR`.
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "lowbit/train/qat.h"
#include "train_flags.h"

namespace lowbit::tools {

void AddQat(CLI::App& app, Registry& r) {
  auto o = std::make_shared<train::QatOptions>();
  // Defaults: steps of 16 x 256 tokens; the peak learning rate, the number of steps and the held-out
  // selection depend on the type's bits per weight (train::DefaultQatSchedule: 600 steps at 1e-4 at
  // 2-3 bits; above, 200 steps at 1e-5 and the state with the lowest KL on 32 sequences held out of
  // the training text). On
  // stories5M a step costs ~2.2 CPU-seconds on the Zen 5 host (docs/PERFORMANCE.md, "Training
  // throughput"); the figures are in docs/QUALITY.md ("QAT and QLoRA").
  o->train.steps = 0;    // per type: train::DefaultQatSchedule
  o->train.batch = 16;
  o->train.micro_batch = 4;
  o->train.ctx = 256;
  o->train.lr = -1.0f;   // per type
  o->train.warmup = 20;
  o->train.checkpoint_every = 100;
  auto quiet = std::make_shared<bool>(false);
  auto json = std::make_shared<bool>(false);
  CLI::App* sub = app.add_subcommand(
      "qat", "Quantization-aware training: train a float model for a quantized type, mix or int grid; write the quantized GGUF or GPTQ folder");
  sub->add_option("-m,--model", o->model, "float model: a GGUF (F32, F16 or BF16) or a Hugging Face folder (--format gptq needs a folder)")->required();
  // Exactly one target: --type (a GGUF of that type or mix) or --format gptq (a folder on the int grid).
  CLI::Option_group* target = sub->add_option_group("target", "what QAT trains for: --type or --format gptq (one of them)");
  target->add_option("--type", o->type, "tensor type or llama.cpp mix, as for lowbit quantize (Q2_K, Q4_K_M, ...): a GGUF");
  target->add_option("--format", o->format, "gptq: a GPTQ folder on the int-N grid of --bits / --group-size (MODEL then a Hugging Face "
                                            "float folder)")
      ->check(CLI::IsMember({"gptq"}));
  target->require_option(1);
  sub->add_option("-o,--output", o->output, "quantized GGUF to write, or the folder --format gptq writes")->required();
  auto sym = std::make_shared<bool>(false);
  auto asym = std::make_shared<bool>(false);
  sub->add_option("--bits", o->folder.bits, "bits per weight of --format gptq (2, 3, 4, 8)")->check(CLI::IsMember({2, 3, 4, 8}));
  sub->add_option("--group-size", o->folder.group_size, "columns per scale of --format gptq (-1: one per row; default 128)")
      ->check(CLI::Range(int64_t{-1}, int64_t{1} << 20));
  auto* sym_flag = sub->add_flag("--sym", *sym, "symmetric grid (zero fixed at 2^(bits-1); the default)");
  sub->add_flag("--asym", *asym, "asymmetric grid (integer zero point per group)")->excludes(sym_flag);
  sub->add_option("--range", o->folder.range, "each group's range on the int grid: minmax (default) or mse (AutoGPTQ's shrink search)")
      ->check(CLI::IsMember({"minmax", "mse"}));
  auto* train = sub->add_option("--train", o->train_text, "text to train on");
  auto* self = sub->add_flag("--self-distill", o->self_distill, "train on text the model generates itself (LLM-QAT)");
  train->excludes(self);
  sub->add_option("--samples", o->samples, "sequences to generate with --self-distill (default: steps x batch, at most 1024)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  sub->add_option("--loss", o->loss, "kl: distill from the float model (default); ce: next-token cross-entropy")
      ->check(CLI::IsMember({"kl", "ce"}));
  sub->add_flag("--learn-scales", o->learn_scales, "learn the block scales too (LSQ) where the format has free ones (Q4_0, Q5_0, Q8_0, IQ4_NL, the int grid)");
  sub->add_option("--grid", o->grid, "search: the type's quantizer searches each block's scales every step (default); frozen: keep "
                                    "post-training quantization's block scales and mins, train the codes only")
      ->check(CLI::IsMember({"search", "frozen"}))
      ->capture_default_str();
  o->holdout = -1;  // per type
  sub->add_option("--holdout", o->holdout, "sequences of --ctx-size tokens held out of the training data; the output is the state "
                                          "(step 0 = PTQ included) with the lowest KL on them; 0: the last step (default: per type, "
                                          "see --lr: 0, else 32)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  sub->add_option("--eval-every", o->eval_every, "steps between held-out evaluations (0: steps / 20)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30))
      ->capture_default_str();
  sub->add_option("--imatrix", o->imatrix, "importance matrix for the searching quantizers");
  sub->add_flag("--pure", o->pure, "no mix rules: every tensor gets TYPE");
  sub->add_option("--tensor-type", o->tensor_types, "REGEX=TYPE override (repeatable)");
  sub->add_option("--output-tensor-type", o->output_tensor_type, "type of output.weight");
  sub->add_option("--token-embedding-type", o->token_embedding_type, "type of token_embd.weight");
  sub->add_option("-t,--threads", o->threads, "threads (default: all)")->check(CLI::Range(0, 1024));
  sub->add_flag("-q,--quiet", *quiet, "no progress lines");
  sub->add_flag("--json", *json, "print the report as one JSON object on stdout");
  AddTrainOptions(sub, &o->train);
  sub->get_option("--steps")->description("optimizer steps (default: per type, see --lr)")->default_str("");
  sub->get_option("--lr")
      ->description("peak learning rate (default: per type: 600 steps at 1e-4 where the quantized tensors average at most 3.5 bits "
                    "per weight, else 200 steps at 1e-5 with --holdout 32)")
      ->default_str("");
  r.Add(sub, [o, quiet, json, sym, asym]() -> Status {
    if (*sym || *asym) o->folder.sym = *sym;
    o->folder.format = o->format;
    if (o->train.checkpoint.empty()) o->train.checkpoint = o->output + ".ckpt";
    const bool q = *quiet;
    LOWBIT_ASSIGN_OR_RETURN(train::QatReport rep, train::RunQat(*o, [q](const std::string& line) {
      if (!q) std::fprintf(stderr, "%s\n", line.c_str());
    }));
    if (*json) {
      const nlohmann::json j = {{"output", o->output}, {"type", rep.mix}, {"file_size", rep.file_size}, {"steps", rep.steps_run},
                                {"first_loss", rep.first_loss}, {"last_loss", rep.last_loss}, {"tokens_per_s", rep.tokens_per_s},
                                {"seconds", rep.seconds}, {"quantized_tensors", rep.quantized_tensors},
                                {"trained_parameters", rep.trained_parameters},
                                {"selected_step", rep.selected_step}, {"heldout_kl", rep.heldout_kl}};
      std::printf("%s\n", j.dump(2).c_str());
    }
    std::fprintf(stderr, "lowbit qat: wrote %s (%s, %llu bytes): %lld steps, loss %.4f -> %.4f, %.0f tok/s, %.1f s\n",
                 o->output.c_str(), rep.mix.c_str(), static_cast<unsigned long long>(rep.file_size),
                 static_cast<long long>(rep.steps_run), rep.first_loss, rep.last_loss, rep.tokens_per_s, rep.seconds);
    return OkStatus();
  });
}

}  // namespace lowbit::tools

// `lowbit quantize IN OUT TYPE`: flags and printing only; the work is lowbit::QuantizeModel.
#include <cstdio>
#include <memory>

#include <fmt/format.h>

#include "commands.h"
#include "lowbit/pipeline/quant_mix.h"
#include "lowbit/pipeline/quantize.h"
#include "lowbit/pipeline/quantize_bnb.h"
#include "lowbit/pipeline/quantize_folder.h"

namespace lowbit::tools {

void AddQuantize(CLI::App& app, Registry& r) {
  auto o = std::make_shared<QuantizeOptions>();
  auto json = std::make_shared<bool>(false);
  auto quiet = std::make_shared<bool>(false);
  CLI::App* sub = app.add_subcommand(
      "quantize", fmt::format("Quantize a model to a tensor type or a llama.cpp-style mix. TYPE: {}",
                              fmt::join(QuantMixNames(), ", ")));
  sub->add_option("input", o->input, "GGUF (F32/F16/BF16), llama2.c checkpoint, HF folder or safetensors file")->required();
  sub->add_option("output", o->output, "output GGUF, or the folder --format gptq|awq writes")->required();
  sub->add_option("type", o->type, "tensor type (Q4_K) or mix (Q4_K_M, Q3_K_S, Q2_K, IQ4_XS, ...); not with --format gptq|awq");
  auto folder = std::make_shared<FolderQuantOptions>();
  auto format = std::make_shared<std::string>("gguf");
  auto sym = std::make_shared<bool>(false);
  auto asym = std::make_shared<bool>(false);
  sub->add_option("--format", *format,
                  "gguf (default), gptq / awq: a Hugging Face folder on the int-N grid of --bits / --group-size, or bnb: a "
                  "bitsandbytes folder (--method nf4|fp4|int8)")
      ->check(CLI::IsMember({"gguf", "gptq", "awq", "bnb"}));
  auto bnb = std::make_shared<BnbFolderOptions>();
  sub->add_flag("--double-quant", bnb->double_quant, "--format bnb, nf4/fp4: quantize the block absmax values too (bnb_4bit_use_double_quant)");
  sub->add_option("--block-size", bnb->block_size, "--format bnb, nf4/fp4: elements per absmax (32..4096, a power of two; default 64)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  sub->add_flag("--scale-search", bnb->scale_search,
                "--format bnb, nf4/fp4: search each block's scale for the least (--imatrix: weighted) error instead of absmax");
  sub->add_flag("--gptq", bnb->gptq,
                "--format bnb --method nf4 (block 32 or 64): choose the codes with GPTQ on --calib text (still a bitsandbytes folder)");
  sub->add_option("--int8-threshold", bnb->int8_threshold, "--format bnb --method int8: llm_int8_threshold written to the config (default 6.0)")
      ->check(CLI::Range(0.0, 1e30));
  sub->add_option("--bits", folder->bits, "bits per weight of --format gptq|awq (2, 3, 4, 8; AWQ: 4)")->check(CLI::IsMember({2, 3, 4, 8}));
  sub->add_option("--group-size", folder->group_size, "columns per scale of --format gptq|awq (-1: one per row; default 128)")
      ->check(CLI::Range(int64_t{-1}, int64_t{1} << 20));
  auto sym_flag = sub->add_flag("--sym", *sym, "symmetric grid (zero fixed at 2^(bits-1); GPTQ's default)");
  sub->add_flag("--asym", *asym, "asymmetric grid (integer zero point per group; AWQ's default)")->excludes(sym_flag);
  sub->add_flag("--act-order", folder->act_order, "GPTQ: columns in descending Hessian diagonal order (desc_act)");
  sub->add_option("--range", folder->range, "each group's range on the int grid: minmax (default) or mse (AutoGPTQ's shrink search)")
      ->check(CLI::IsMember({"minmax", "mse"}));
  sub->add_flag("--static-groups", folder->static_groups, "GPTQ: group ranges from the original weights before the column loop");
  sub->add_option("--imatrix", o->imatrix, "importance matrix (llama.cpp .dat or GGUF)");
  sub->add_option("--vocab", o->vocab, "tokenizer for llama2.c inputs");
  sub->add_flag("--pure", o->pure, "no mix rules: every tensor gets the base type (shape fallbacks still apply)");
  sub->add_flag("--allow-requantize", o->allow_requantize, "allow quantized input tensors (dequantized, then quantized again)");
  sub->add_option("--tensor-type", o->tensor_types, "REGEX=TYPE: type for tensors whose name matches (repeatable)");
  sub->add_option("--output-tensor-type", o->output_tensor_type, "type of output.weight");
  sub->add_option("--token-embedding-type", o->token_embedding_type, "type of token_embd.weight");
  sub->add_option("-t,--threads", o->threads, "threads (default: all)")->check(CLI::Range(0, 1024));
  auto method = std::make_shared<std::string>("rtn");
  sub->add_option("--method", *method, "how the values are chosen: rtn (each tensor alone), gptq or awq (calibrated on --calib text); "
                  "with --format bnb: nf4, fp4 or int8")
      ->check(CLI::IsMember({"rtn", "gptq", "awq", "nf4", "fp4", "int8"}));
  sub->add_option("--calib", o->calib.text_path, "calibration text for gptq / awq");
  sub->add_option("--nsamples", o->calib.nsamples, "calibration samples (default 128)")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  sub->add_option("--seqlen", o->calib.seqlen, "tokens per sample (default 512, or the model's context if shorter)")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 20));
  sub->add_option("--seed", o->calib.seed, "seed of the sample draw (default 0)");
  sub->add_option("--damp", o->damp_percent, "GPTQ dampening, a fraction of the mean Hessian diagonal (default 0.01), raised while the Cholesky factorization fails")
      ->check(CLI::Range(0.0, 1.0));
  auto no_duo = std::make_shared<bool>(false);
  auto no_clip = std::make_shared<bool>(false);
  sub->add_flag("--awq-no-duo-scaling", *no_duo, "AWQ: scales from the activations alone (x_mean^r), not x_mean^r / w_mean^(1-r)");
  sub->add_flag("--awq-no-clip", *no_clip, "AWQ: skip the clip search (AutoAWQ's apply_clip=False)");
  sub->add_flag("--json", *json, "print the report as one JSON object");
  sub->add_flag("-q,--quiet", *quiet, "no progress display");
  r.Add(sub, [o, json, quiet, method, folder, format, sym, asym, no_duo, no_clip, bnb]() -> Status {
    if ((*no_duo || *no_clip) && *method != "awq") return Errorf("--awq-no-duo-scaling and --awq-no-clip are options of --method awq");
    o->awq_duo_scaling = !*no_duo;
    o->awq_clip = !*no_clip;
    o->show_progress = !*quiet && !*json;
    const bool bnb_method = *method == "nf4" || *method == "fp4" || *method == "int8";
    if ((*format == "bnb") != bnb_method) {
      return *format == "bnb" ? Errorf("--format bnb takes --method nf4, fp4 or int8")
                              : Errorf("--method {} is a bitsandbytes method: add --format bnb", *method);
    }
    if (bnb->gptq && *format != "bnb") return Errorf("--gptq is an option of --format bnb --method nf4; for {} output use --method gptq", *format);
    QuantizeReport report;
    if (*format == "bnb") {
      if (!o->type.empty()) return Errorf("TYPE '{}' is for GGUF output; --format bnb takes --method, --block-size and --double-quant", o->type);
      bnb->method = *method;
      LOWBIT_ASSIGN_OR_RETURN(report, QuantizeToBnbFolder(*o, *bnb));
      const std::string out = *json ? report.ToJson().dump(2) + "\n" : report.ToText();
      std::fwrite(out.data(), 1, out.size(), stdout);
      return OkStatus();
    }
    LOWBIT_ASSIGN_OR_RETURN(o->method, ParseQuantizeMethod(*method));
    const bool to_folder = *format != "gguf";
    if (to_folder && !o->type.empty()) return Errorf("TYPE '{}' is for GGUF output; --format {} takes --bits and --group-size", o->type, *format);
    if (!to_folder && o->type.empty()) return Errorf("TYPE is required for GGUF output (e.g. Q4_K_M), or pass --format gptq|awq");
    if (*sym || *asym) folder->sym = *sym;
    folder->format = *format;
    if (to_folder) {
      LOWBIT_ASSIGN_OR_RETURN(report, QuantizeToFolder(*o, *folder));
    } else {
      LOWBIT_ASSIGN_OR_RETURN(report, QuantizeModel(*o));
    }
    const std::string out = *json ? report.ToJson().dump(2) + "\n" : report.ToText();
    std::fwrite(out.data(), 1, out.size(), stdout);
    return OkStatus();
  });
}

}  // namespace lowbit::tools

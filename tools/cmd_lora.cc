// `lowbit lora merge -m BASE --lora F [--lora-scaled F S] -o OUT.gguf [--outtype T]` and
// `lowbit lora convert IN -m BASE -o OUT.gguf|DIR` (GGUF adapter <-> PEFT folder).
#include <cstdio>
#include <filesystem>
#include <memory>

#include "commands.h"
#include "lowbit/formats/gguf_reader.h"
#include "lowbit/model/llama.h"
#include "train_flags.h"

namespace lowbit::tools {

void AddLora(CLI::App& app, Registry& r) {
  CLI::App* lora = app.add_subcommand("lora", "LoRA adapters: merge into a model, convert between GGUF and PEFT");
  lora->require_subcommand(1);

  struct MergeArgs {
    train::MergeOptions o;
    LoraFlags flags;
  };
  auto m = std::make_shared<MergeArgs>();
  CLI::App* merge = lora->add_subcommand("merge", "Merge adapters into a base model (llama.cpp's llama-export-lora)");
  merge->add_option("-m,--model", m->o.base, "base GGUF model")->required();
  merge->add_option("-o,--output", m->o.output, "merged GGUF to write")->required();
  merge->add_option("--outtype", m->o.outtype, "type of merged tensors (default: F32 for F32 bases, else F16, as llama.cpp)");
  merge->add_option("-t,--threads", m->o.threads, "threads (default: all)")->check(CLI::Range(0, 1024));
  AddLoraOptions(merge, &m->flags);
  r.Add(merge, [m]() -> Status {
    LOWBIT_ASSIGN_OR_RETURN(m->o.adapters, m->flags.Specs());
    LOWBIT_ASSIGN_OR_RETURN(train::MergeReport rep, train::MergeLora(m->o));
    std::fprintf(stderr, "lowbit lora merge: wrote %s (%llu bytes): %d tensors merged, %d copied\n", m->o.output.c_str(),
                 static_cast<unsigned long long>(rep.file_size), rep.merged, rep.copied);
    return OkStatus();
  });

  struct ConvertArgs {
    std::string input, model, output, outtype = "f32";
  };
  auto c = std::make_shared<ConvertArgs>();
  CLI::App* conv = lora->add_subcommand("convert", "Convert an adapter between llama.cpp GGUF and a PEFT folder");
  conv->add_option("input", c->input, "adapter: GGUF file or PEFT folder")->required();
  conv->add_option("-m,--model", c->model, "the base GGUF model it belongs to (checked; gives the Q/K layout)")->required();
  conv->add_option("-o,--output", c->output, "OUT.gguf (llama.cpp) or a folder (PEFT)")->required();
  conv->add_option("--outtype", c->outtype, "GGUF tensor type")->check(CLI::IsMember({"f32", "f16", "bf16"}, CLI::ignore_case));
  r.Add(conv, [c]() -> Status {
    LOWBIT_ASSIGN_OR_RETURN(GgufFile g, GgufFile::Open(c->model));
    LOWBIT_ASSIGN_OR_RETURN(LlamaModel model, LlamaModel::Load(g));
    LOWBIT_ASSIGN_OR_RETURN(train::LoraAdapter a, train::ReadLoraAdapter(c->input, model.config()));
    LOWBIT_RETURN_IF_ERROR(train::CheckLoraAgainst(a, g, model.config()));
    const bool peft = std::filesystem::path(c->output).extension() != ".gguf";
    if (peft) {
      LOWBIT_RETURN_IF_ERROR(train::WritePeftAdapter(a, model.config(), c->output, std::filesystem::path(c->model).filename().string()));
    } else {
      LOWBIT_RETURN_IF_ERROR(train::WriteLoraGguf(a, model.config().arch, c->output, FindGgmlTypeByName(c->outtype)->type));
    }
    std::fprintf(stderr, "lowbit lora convert: wrote %s (%s, %zu adapted weights)\n", c->output.c_str(),
                 peft ? "PEFT folder" : "GGUF adapter", a.tensors.size());
    return OkStatus();
  });
}

}  // namespace lowbit::tools

#include "commands.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>

#include "lowbit/base/cpu_features.h"
#include "lowbit/base/progress.h"
#include "lowbit/numeric/ggml_type.h"
#include "lowbit/parallel/mpi_comm.h"
#include "lowbit/pipeline/convert.h"
#include "lowbit/pipeline/inspect.h"
#include "tp.h"

namespace lowbit::tools {

int Registry::Run(const CLI::App&) const {
  for (const auto& [sub, action] : actions_) {
    if (!sub->parsed()) continue;
    Status s = action();
    if (!s.ok()) {
      std::fprintf(stderr, "lowbit %s: error: %s%s\n", sub->get_name().c_str(), ErrorPrefix().c_str(), s.message().c_str());
      return 1;
    }
    return 0;
  }
  return 2;
}

void AddConvert(CLI::App& app, Registry& r) {
  struct Args {
    std::string input, vocab, output, outtype, fallback = "q8_0";
    bool quiet = false;
    LegacyGgmlOptions legacy;
  };
  auto a = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand(
      "convert", "Convert a llama2.c checkpoint, a Hugging Face folder, a safetensors file, a GGUF or a legacy GGML "
                 "(ggml/ggmf/ggjt) file to GGUF");
  sub->add_option("input", a->input, "model: llama2.c .bin, HF folder, .safetensors, .gguf or a legacy GGML .bin")->required();
  sub->add_option("--vocab", a->vocab, "tokenizer: tokenizer.bin, tokenizer.model, tokenizer.json or a GGUF");
  sub->add_option("-o,--output", a->output, "output GGUF file")->required();
  sub->add_option("--outtype", a->outtype,
                  "type of 2-D float weights (default f32); given for a GPTQ/AWQ folder, its quantized linears "
                  "are dequantized to it too (default: kept exactly as Q4_0 / Q8_0 where those hold them)")
      ->check(CLI::IsMember({"f32", "f16", "bf16"}, CLI::ignore_case));
  sub->add_option("--fallback", a->fallback,
                  "GPTQ/AWQ linears that no ggml type holds exactly (act-order, odd groups) are requantized to this "
                  "type (default q8_0), with the error it adds printed");
  sub->add_option("--ctx", a->legacy.context_length,
                  "legacy GGML files (which do not store it): context length to record (default 2048; 4096 for Llama 2)")
      ->check(CLI::Range(1u, 1u << 24));
  sub->add_option("--rms-eps", a->legacy.rms_epsilon,
                  "legacy GGML files: RMSNorm epsilon to record (default 5e-6; 1e-6 for LLaMA 1, 1e-5 for Llama 2)")
      ->check(CLI::PositiveNumber);
  sub->add_flag("-q,--quiet", a->quiet, "no progress display");
  r.Add(sub, [a]() -> Status {
    ConvertOptions o;
    o.legacy = a->legacy;
    o.input = a->input;
    o.vocab = a->vocab;
    o.output = a->output;
    o.outtype = a->outtype.empty() ? GgmlType::kF32 : FindGgmlTypeByName(a->outtype)->type;
    o.dequantize = !a->outtype.empty();
    const GgmlTypeInfo* fb = FindGgmlTypeByName(a->fallback);
    if (fb == nullptr) return Errorf("--fallback: unknown type '{}'", a->fallback);
    o.fallback = fb->type;
    o.show_progress = !a->quiet;
    std::vector<std::string> notes;
    o.notes = &notes;
    LOWBIT_RETURN_IF_ERROR(Convert(o));
    for (const std::string& n : notes) std::fprintf(stderr, "lowbit convert: %s\n", n.c_str());
    std::fprintf(stderr, "lowbit convert: wrote %s\n", a->output.c_str());
    return OkStatus();
  });
}

void AddInspect(CLI::App& app, Registry& r) {
  struct Args {
    std::string path;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand("inspect", "Show metadata and tensors of a GGUF, safetensors file or HF folder");
  sub->add_option("file", a->path, "GGUF file, safetensors file or Hugging Face folder")->required();
  sub->add_flag("--json", a->json, "print one JSON object");
  r.Add(sub, [a]() -> Status {
    LOWBIT_ASSIGN_OR_RETURN(InspectReport report, Inspect(a->path));
    const std::string out = a->json ? report.ToJson().dump(2) + "\n" : report.ToText();
    std::fwrite(out.data(), 1, out.size(), stdout);
    return OkStatus();
  });
}

void AddInfo(CLI::App& app, Registry& r) {
  CLI::App* sub = app.add_subcommand("info", "Show the CPU features and code paths lowbit will use");
  r.Add(sub, []() -> Status {
    std::printf("%s\ncpu features : %s\ncode paths   : ", kVersion, GetCpuFeatures().ToString().c_str());
    for (Isa i : SupportedIsas()) std::printf("%s ", std::string(IsaName(i)).c_str());
    std::printf("\nactive       : %s (override with LOWBIT_ISA=ref|avx2|avx512)\n",
                std::string(IsaName(ActiveIsa())).c_str());
    std::printf("L1 data      : %u KiB per core (8-row kernels prefetch into L2 when 16 rows exceed it)\n",
                GetCpuFeatures().l1d_bytes / 1024);
    return OkStatus();
  });
}

}  // namespace lowbit::tools

namespace lowbit::tools {

bool MemoryCheckApplies(const std::string& model) {
  if (StartedByMpiLauncher()) return false;
  std::ifstream in(model, std::ios::binary);
  char magic[4] = {0, 0, 0, 0};
  return in.read(magic, 4) && std::memcmp(magic, "GGUF", 4) == 0;
}

}  // namespace lowbit::tools

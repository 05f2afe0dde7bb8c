// `lowbit imatrix -m MODEL -f TEXT -o FILE [-c CTX] [--chunks N] [-t T]`: llama.cpp's .dat format.
#include <cstdio>
#include <memory>

#include "commands.h"
#include "lowbit/pipeline/model_source.h"
#include "lowbit/base/progress.h"
#include "lowbit/eval/imatrix_collect.h"
#include "lowbit/formats/gguf_vocab.h"
#include "lowbit/formats/hf.h"

namespace lowbit::tools {

void AddImatrix(CLI::App& app, Registry& r) {
  struct Args {
    std::string model, file, output;
    ImatrixOptions o;
    Residency residency = Residency::kAuto;
  };
  auto a = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand("imatrix", "Compute an importance matrix (mean squared activations) for quantize --imatrix");
  sub->add_option("-m,--model", a->model, "model: GGUF, Hugging Face folder (float or GPTQ/AWQ), safetensors or llama2.c file")->required();
  sub->add_option("-f,--file", a->file, "calibration text (UTF-8)")->required();
  sub->add_option("-o,--output", a->output, "output .dat file (llama.cpp's format)")->required();
  sub->add_option("-c,--ctx-size", a->o.ctx, "tokens per chunk (default: the model's context)")->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  sub->add_option("--chunks", a->o.chunks, "use at most N chunks");
  sub->add_option("-t,--threads", a->o.threads, "threads (default: all)")->check(CLI::Range(0, 1024));
  AddResidencyOptions(sub, &a->residency);
  r.Add(sub, [a]() -> Status {
    LOWBIT_ASSIGN_OR_RETURN(GgufFile g, OpenModel(a->model, a->residency));
    LOWBIT_ASSIGN_OR_RETURN(LlamaModel model, LlamaModel::Load(g));
    LOWBIT_ASSIGN_OR_RETURN(Vocab vocab, VocabFromGguf(g));
    LOWBIT_ASSIGN_OR_RETURN(std::string text, ReadTextFile(a->file, uint64_t{1} << 30));
    a->o.dataset = a->file;
    Progress progress("imatrix", 0, 0);
    LOWBIT_ASSIGN_OR_RETURN(Imatrix m, CollectImatrix(model, vocab, text, a->o, [&](int64_t i, int64_t n) {
      progress.Update(static_cast<size_t>(i), 0, fmt::format("chunk {} of {}", i, n));
    }));
    progress.Finish();
    LOWBIT_RETURN_IF_ERROR(WriteImatrixDat(a->output, m));
    std::fprintf(stderr, "lowbit imatrix: %zu matrices over %d chunks written to %s\n", m.entries.size(), m.last_call,
                 a->output.c_str());
    return OkStatus();
  });
}

}  // namespace lowbit::tools

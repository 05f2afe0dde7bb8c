// `lowbit run -m MODEL -p PROMPT [-n N] [sampling flags] [-t T]`: streams generated text to stdout,
// timing to stderr.
#include <chrono>
#include <cstdio>
#include <memory>

#include <fmt/format.h>

#include "commands.h"
#include "lowbit/pipeline/model_source.h"
#include "train_flags.h"
#include "lowbit/advise/guard.h"
#include "lowbit/base/memory_info.h"
#include "lowbit/engine/generate.h"
#include "lowbit/formats/hf.h"
#include "spec_flags.h"
#include "tp.h"

namespace lowbit::tools {

void AddRun(CLI::App& app, Registry& r) {
  struct Args {
    std::string model;
    GenerateOptions g;
    int64_t seed = -1;
    Residency residency = Residency::kAuto;
    LoraFlags lora;
    TpFlags tp;
    bool no_memory_check = false;
    SpecFlags spec;
    std::string prompt_file;
  };
  auto a = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand("run", "Generate text with a GGUF llama-family model");
  sub->add_option("-m,--model", a->model, "model: GGUF, Hugging Face folder (float or GPTQ/AWQ), safetensors or llama2.c file")->required();
  CLI::Option* prompt = sub->add_option("-p,--prompt", a->g.prompt, "prompt text");
  sub->add_option("-f,--file", a->prompt_file, "read the prompt from this file")->excludes(prompt);
  sub->add_option("-n,--n-predict", a->g.n_predict, "tokens to generate")->check(CLI::Range(int64_t{0}, int64_t{1} << 24));
  sub->add_option("-c,--ctx-size", a->g.n_ctx, "context size (default: the model's)")->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  sub->add_option("-t,--threads", a->g.threads, "threads (default: all)")->check(CLI::Range(0, 1024));
  sub->add_option("--temp", a->g.sampling.temp, "temperature (0: greedy)")->check(CLI::Range(0.0f, 100.0f));
  sub->add_option("--top-k", a->g.sampling.top_k, "top-k (0: off)")->check(CLI::Range(0, 1 << 24));
  sub->add_option("--top-p", a->g.sampling.top_p, "top-p (1: off)")->check(CLI::Range(0.0f, 1.0f));
  sub->add_option("--min-p", a->g.sampling.min_p, "min-p (0: off)")->check(CLI::Range(0.0f, 1.0f));
  sub->add_option("--repeat-penalty", a->g.sampling.repeat_penalty, "repetition penalty (1: off)")->check(CLI::Range(0.0f, 10.0f));
  sub->add_option("--repeat-last-n", a->g.sampling.repeat_last_n, "tokens the penalty looks back over")->check(CLI::Range(0, 1 << 20));
  sub->add_option("--seed", a->seed, "random seed (default: time)");
  AddCacheTypeOption(sub, &a->g.kv_f16);
  AddResidencyOptions(sub, &a->residency);
  AddLoraOptions(sub, &a->lora);
  AddTpOptions(sub, &a->tp);
  AddMemoryCheckOption(sub, &a->no_memory_check);
  AddSpecOptions(sub, &a->spec);
  r.Add(sub, [a]() -> Status {
    if (!a->no_memory_check && MemoryCheckApplies(a->model)) {
      LOWBIT_RETURN_IF_ERROR(RequireFit({.model = a->model, .n_ctx = a->g.n_ctx, .threads = a->g.threads, .kv_f16 = a->g.kv_f16,
                                         .residency = a->residency}));
    }
    if (!a->prompt_file.empty()) {
      LOWBIT_ASSIGN_OR_RETURN(a->g.prompt, ReadTextFile(a->prompt_file));
    }
    const auto t0 = std::chrono::steady_clock::now();
    LOWBIT_ASSIGN_OR_RETURN(auto ctx, ModelContext::Open(a->model, a->residency, a->tp));
    LOWBIT_ASSIGN_OR_RETURN(auto specs, a->lora.Specs());
    LOWBIT_ASSIGN_OR_RETURN(auto adapters, ctx->AttachLora(specs));
    std::unique_ptr<ModelContext> draft;
    LOWBIT_RETURN_IF_ERROR(OpenSpeculative(a->spec, a->model, *ctx, a->residency, &draft, &a->g.spec));
    const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    a->g.sampling.seed = a->seed >= 0 ? static_cast<uint64_t>(a->seed)
                                      : static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
    // The seed is rank 0's (only rank 0 samples); stdout is rank 0's (the others' goes nowhere).
    a->g.comm = ctx->comm();
    std::fputs(a->g.prompt.c_str(), stdout);
    std::fflush(stdout);
    LOWBIT_ASSIGN_OR_RETURN(GenerateStats st, Generate(ctx->model(), ctx->vocab(), a->g, [](const std::string& piece) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    }));
    std::printf("\n");
    std::fflush(stdout);  // the text ends before the timing line on stderr
    const auto np = static_cast<double>(st.prompt_tokens.size()), ng = static_cast<double>(st.generated.size());
    if (!ctx->leader()) return OkStatus();
    const std::string accepted =
        a->g.spec.enabled() ? fmt::format(" | accepted {}/{} drafted ({} forwards)", st.accepted, st.drafted, st.forwards) : "";
    std::fprintf(stderr, "load %.1f ms (%s) | prompt %zu tokens, %.1f tok/s | generated %zu tokens, %.1f tok/s%s%s | peak RSS %.1f MiB\n",
                 load_s * 1e3, ctx->residency().c_str(), st.prompt_tokens.size(), st.prompt_seconds > 0 ? np / st.prompt_seconds : 0.0,
                 st.generated.size(), st.generate_seconds > 0 ? ng / st.generate_seconds : 0.0,
                 st.stopped_at_eos ? " (end of text)" : "", accepted.c_str(), static_cast<double>(PeakResidentBytes()) / (1 << 20));
    return OkStatus();
  });
}

}  // namespace lowbit::tools

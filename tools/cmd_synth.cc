// `lowbit synth --shape NAME -o FILE --type T [--seed S] [-t T]`.
#include <cstdio>
#include <memory>

#include "commands.h"
#include "lowbit/pipeline/synth.h"

namespace lowbit::tools {

void AddSynth(CLI::App& app, Registry& r) {
  auto o = std::make_shared<SynthOptions>();
  auto quiet = std::make_shared<bool>(false);
  CLI::App* sub = app.add_subcommand("synth", "Write a GGUF with random weights in a real model's shape (for speed tests)");
  sub->add_option("--shape", o->shape, "a shape `lowbit advise --list-shapes` lists (tinyllama-1.1b, llama2-7b, llama3-8b, ...)")->required();
  sub->add_option("-o,--output", o->output, "output GGUF")->required();
  sub->add_option("--type", o->type, "tensor type or mix (F32, F16, Q4_0, Q8_0, Q4_K_M, ...)");
  sub->add_option("--seed", o->seed, "random seed");
  sub->add_option("--layers", o->layers, "keep only the first N layers (a quick test file with the shape's widths)")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  sub->add_option("-t,--threads", o->threads, "threads (default: all)")->check(CLI::Range(0, 1024));
  sub->add_flag("-q,--quiet", *quiet, "no progress display");
  r.Add(sub, [o, quiet]() -> Status {
    o->show_progress = !*quiet;
    LOWBIT_ASSIGN_OR_RETURN(uint64_t bytes, Synthesize(*o));
    std::fprintf(stderr, "lowbit synth: wrote %s (%llu bytes)\n", o->output.c_str(), static_cast<unsigned long long>(bytes));
    return OkStatus();
  });
}

}  // namespace lowbit::tools

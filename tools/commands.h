// Subcommand registration for the lowbit program. Each Add* declares a subcommand's flags and the
// action to run when it is chosen.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "lowbit/base/mapped_file.h"
#include "lowbit/base/status.h"

namespace lowbit::tools {

inline constexpr const char* kVersion = "lowbit 0.1.0";

class Registry {
 public:
  void Add(CLI::App* sub, std::function<Status()> action) { actions_.emplace_back(sub, std::move(action)); }
  // Runs the chosen subcommand; prints its error as one line and returns the exit code.
  int Run(const CLI::App& app) const;

 private:
  std::vector<std::pair<CLI::App*, std::function<Status()>>> actions_;
};

// --cache-type f32|f16 (the KV cache's element type) for run, perplexity and bench.
inline void AddCacheTypeOption(CLI::App* sub, bool* kv_f16) {
  sub->add_option_function<std::string>(
         "--cache-type", [kv_f16](const std::string& v) { *kv_f16 = v == "f16"; }, "KV cache type: f32 (default) or f16")
      ->check(CLI::IsMember({"f32", "f16"}));
}

// --mmap / --no-mmap for run, perplexity, imatrix and bench: how the model's weights are held
// (Residency, base/mapped_file.h; GgufFile::in_memory). Neither: read into memory when the kernel has
// transparent huge pages and the file takes at most half of the available memory, mapped otherwise.
inline void AddResidencyOptions(CLI::App* sub, Residency* r) {
  CLI::Option* map = sub->add_flag_callback("--mmap", [r] { *r = Residency::kMapped; }, "map the model file (no copy)");
  CLI::Option* read = sub->add_flag_callback("--no-mmap", [r] { *r = Residency::kInMemory; },
                                             "read the model's weights into memory, in 2 MiB pages where the kernel has them");
  map->excludes(read);
}

// How the model's bytes are held, for the tools' reports.
inline const char* ResidencyName(bool in_memory) { return in_memory ? "read into memory" : "mapped"; }

void AddConvert(CLI::App& app, Registry& r);
void AddInspect(CLI::App& app, Registry& r);
void AddQuantize(CLI::App& app, Registry& r);
void AddPerplexity(CLI::App& app, Registry& r);
void AddRun(CLI::App& app, Registry& r);
void AddImatrix(CLI::App& app, Registry& r);
void AddBench(CLI::App& app, Registry& r);
void AddSynth(CLI::App& app, Registry& r);
void AddInfo(CLI::App& app, Registry& r);
void AddPlan(CLI::App& app, Registry& r);
void AddServe(CLI::App& app, Registry& r);
void AddChat(CLI::App& app, Registry& r);
void AddTemplate(CLI::App& app, Registry& r);
void AddQat(CLI::App& app, Registry& r);       // cmd_qat.cc
void AddFinetune(CLI::App& app, Registry& r);  // cmd_finetune.cc
void AddLora(CLI::App& app, Registry& r);      // cmd_lora.cc
void AddAdvise(CLI::App& app, Registry& r);

// --no-memory-check for run and perplexity (serve: the same flag): skip the check that refuses a
// model that will not fit in the memory available (advise/guard.h).
inline void AddMemoryCheckOption(CLI::App* sub, bool* skip) {
  sub->add_flag("--no-memory-check", *skip, "load the model even when it needs more memory than is available");
}
// The check reads a GGUF's header; other inputs (Hugging Face folders, llama2.c files) are
// assembled in memory by OpenModel and not checked, nor is a process started by an MPI launcher
// (a rank holds a shard, which the check does not size).
bool MemoryCheckApplies(const std::string& model);

}  // namespace lowbit::tools

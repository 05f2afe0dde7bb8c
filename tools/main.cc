// lowbit: the command-line program. Thin by design: parse flags, call the library, print.
// Exit codes: 0 success, 1 bad input or failed work (one-line error on stderr), 2 usage error.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "commands.h"
#include "lowbit/base/cpu_features.h"
#include "tp.h"

int main(int argc, char** argv) {
  CLI::App app{"lowbit: make LLMs small and fast on the hardware you have"};
  app.set_version_flag("--version", std::string(lowbit::tools::kVersion));
  app.require_subcommand(1);
  // Lowers the kernel path for comparisons and tests (as LOWBIT_ISA does); never above the CPU's.
  app.add_option_function<std::string>(
         "--isa",
         [](const std::string& v) {
           lowbit::Isa isa;
           if (lowbit::ParseIsa(v, &isa)) lowbit::SetIsaOverride(isa);
         },
         "kernel path: ref, avx2 or avx512 (default: the best the CPU has; also LOWBIT_ISA)")
      ->check(CLI::IsMember({"ref", "avx2", "avx512"}));
  lowbit::tools::Registry registry;
  lowbit::tools::AddConvert(app, registry);
  lowbit::tools::AddInspect(app, registry);
  lowbit::tools::AddQuantize(app, registry);
  lowbit::tools::AddPerplexity(app, registry);
  lowbit::tools::AddRun(app, registry);
  lowbit::tools::AddImatrix(app, registry);
  lowbit::tools::AddBench(app, registry);
  lowbit::tools::AddSynth(app, registry);
  lowbit::tools::AddInfo(app, registry);
  lowbit::tools::AddQat(app, registry);
  lowbit::tools::AddFinetune(app, registry);
  lowbit::tools::AddLora(app, registry);
  lowbit::tools::AddPlan(app, registry);
  lowbit::tools::AddServe(app, registry);
  lowbit::tools::AddChat(app, registry);
  lowbit::tools::AddTemplate(app, registry);
  lowbit::tools::AddAdvise(app, registry);
  // llama.cpp's `-np N` (one dash, two letters), which CLI11 cannot declare, means --parallel.
  std::vector<std::string> args(argv + 1, argv + argc);
  for (std::string& a : args) {
    if (a == "-np") a = "--parallel";
  }
  std::reverse(args.begin(), args.end());  // CLI11 takes the arguments last first
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "lowbit: usage: %s (see lowbit --help)\n", e.what());
    return 2;
  }
  const int code = registry.Run(app);
  lowbit::tools::FinishMpi();  // after the error line, if any
  return code;
}

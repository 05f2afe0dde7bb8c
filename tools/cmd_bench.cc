// `lowbit bench -m MODEL [-p 512] [-n 128] [-t 1,2] [-r 5] [--json]`.
#include <algorithm>
#include <cstdio>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "lowbit/pipeline/model_source.h"
#include "lowbit/eval/bench.h"
#include "lowbit/engine/speculative.h"
#include "lowbit/formats/hf.h"
#include "spec_flags.h"
#include "tp.h"

namespace lowbit::tools {

namespace {

template <typename Args>
Status BenchSpec(const Args& a) {
  if (a.prompt_file.empty()) return Errorf("bench with --lookup or --model-draft needs a prompt: -f FILE");
  LOWBIT_ASSIGN_OR_RETURN(std::string prompt, ReadTextFile(a.prompt_file));
  LOWBIT_ASSIGN_OR_RETURN(auto ctx, ModelContext::Open(a.model, a.residency, a.tp));
  std::unique_ptr<ModelContext> draft;
  SpecBenchOptions o{.prompt = prompt, .n_gen = a.n_gen, .n_ctx = std::min<int64_t>(ctx->model().config().n_ctx_train, 4096),
                     .reps = a.reps, .kv_f16 = a.kv_f16};
  LOWBIT_RETURN_IF_ERROR(OpenSpeculative(a.spec, a.model, *ctx, a.residency, &draft, &o.spec));
  nlohmann::json all = nlohmann::json::array();
  if (!a.json) {
    std::printf("%-8s %8s %8s %16s %16s %8s %10s %9s\n", "threads", "prompt", "tokens", "plain tok/s", "spec tok/s", "speedup",
                "accepted", "identical");
  }
  for (int t : a.threads) {
    o.threads = t;
    LOWBIT_ASSIGN_OR_RETURN(SpecBenchResult b, BenchSpeculative(ctx->model(), ctx->vocab(), o));
    const double rate = b.drafted > 0 ? static_cast<double>(b.accepted) / static_cast<double>(b.drafted) : 0.0;
    // Plain decoding takes generated - 1 forwards (the first token comes from the prompt's).
    const double bound_x = b.lookup_bound > 0 ? static_cast<double>(b.generated - 1) / static_cast<double>(b.lookup_bound) : 0.0;
    all.push_back({{"threads", t}, {"tg_plain", b.tg_plain}, {"tg_plain_std", b.tg_plain_std}, {"tg", b.tg_spec},
                   {"tg_std", b.tg_spec_std}, {"speedup", b.tg_plain > 0 ? b.tg_spec / b.tg_plain : 0.0},
                   {"drafted", b.drafted}, {"accepted", b.accepted}, {"accept_rate", rate}, {"forwards", b.forwards},
                   {"lookup_bound_forwards", b.lookup_bound},
                   {"lookup_bound_speedup", bound_x},
                   {"prompt_tokens", b.prompt_tokens}, {"n_gen", b.generated}, {"identical", b.identical},
                   {"mode", a.spec.lookup ? "lookup" : "draft"}, {"draft_model", a.spec.draft},
                   {"draft_max", a.spec.draft_max}, {"draft_min", a.spec.draft_min}, {"adaptive", !a.spec.fixed},
                   {"repetitions", a.reps}, {"weights", ctx->residency()}});
    if (!a.json) {
      std::printf("%-8d %8lld %8lld %9.1f +-%4.1f %9.1f +-%4.1f %7.2fx %4lld/%-5lld %9s\n", t, static_cast<long long>(b.prompt_tokens),
                  static_cast<long long>(b.generated), b.tg_plain, b.tg_plain_std, b.tg_spec, b.tg_spec_std,
                  b.tg_plain > 0 ? b.tg_spec / b.tg_plain : 0.0, static_cast<long long>(b.accepted),
                  static_cast<long long>(b.drafted), b.identical ? "yes" : "NO");
      if (b.lookup_bound > 0) {
        std::printf("%-8s any n-gram lookup drafter needs >= %lld forwards for these %lld tokens (plain: %lld), so <= %.2fx plain\n", "",
                    static_cast<long long>(b.lookup_bound), static_cast<long long>(b.generated),
                    static_cast<long long>(b.generated - 1), bound_x);
      }
    }
  }
  if (a.json) std::printf("%s\n", (all.size() == 1 ? all[0] : all).dump(2).c_str());
  if (std::any_of(all.begin(), all.end(), [](const nlohmann::json& j) { return !j["identical"].get<bool>(); })) {
    return Errorf("speculative greedy text differed from plain decoding (a bug: please report it)");
  }
  return OkStatus();
}

}  // namespace

void AddBench(CLI::App& app, Registry& r) {
  struct Args {
    std::string model;
    int64_t n_prompt = 512, n_gen = 128;
    std::vector<int> threads{1};
    int reps = 5;
    bool json = false;
    bool kv_f16 = false;
    Residency residency = Residency::kAuto;
    TpFlags tp;
    SpecFlags spec;
    std::string prompt_file;
  };
  auto a = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand("bench", "Prompt and generation speed beside the machine's measured read bandwidth");
  sub->add_option("-m,--model", a->model, "model: GGUF, Hugging Face folder (float or GPTQ/AWQ), safetensors or llama2.c file")->required();
  sub->add_option("-p,--n-prompt", a->n_prompt, "prompt tokens")->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  sub->add_option("-n,--n-gen", a->n_gen, "generated tokens")->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  sub->add_option("-t,--threads", a->threads, "thread counts, e.g. 1,2")->delimiter(',')->check(CLI::Range(1, 1024));
  sub->add_option("-r,--repetitions", a->reps, "repetitions")->check(CLI::Range(1, 1000));
  sub->add_flag("--json", a->json, "print one JSON object (an array when several thread counts are given)");
  AddCacheTypeOption(sub, &a->kv_f16);
  AddResidencyOptions(sub, &a->residency);
  AddTpOptions(sub, &a->tp);
  AddSpecOptions(sub, &a->spec);
  sub->add_option("-f,--file", a->prompt_file,
                  "with --lookup or --model-draft: the prompt (greedy generation after it, plain and speculative in turn)");
  r.Add(sub, [a]() -> Status {
    if (a->spec.enabled()) return BenchSpec(*a);
    LOWBIT_ASSIGN_OR_RETURN(auto ctx, ModelContext::Open(a->model, a->residency, a->tp, /*need_vocab=*/false));
    if (!a->json && ctx->ranks() > 1) std::printf("tensor parallel: %s\n", ctx->residency().c_str());
    nlohmann::json all = nlohmann::json::array();
    if (!a->json) {
      std::printf("%-8s %14s %9s %14s %12s %10s %12s %10s\n", "threads", "pp tok/s", "pp GOP/s", "tg tok/s", "MB/token",
                  "GB/s", "bandwidth", "fraction");
    }
    for (int t : a->threads) {
      LOWBIT_ASSIGN_OR_RETURN(BenchResult b, Bench(ctx->model(), {a->n_prompt, a->n_gen, t, a->reps, a->kv_f16, ctx->comm()}));
      nlohmann::json j = {{"threads", t}, {"pp", b.pp}, {"pp_std", b.pp_std}, {"tg", b.tg}, {"tg_std", b.tg_std},
                          {"bytes_per_token", b.bytes_per_token}, {"gbps", b.gbps}, {"bandwidth_gbps", b.bandwidth_gbps},
                          {"ops_per_token", b.ops_per_token}, {"pp_gops", b.pp_gops},
                          {"n_prompt", a->n_prompt}, {"n_gen", a->n_gen}, {"repetitions", a->reps},
                          {"weights", ctx->residency()}};
      all.push_back(j);
      if (!a->json) {
        std::printf("%-8d %8.1f +-%4.1f %9.1f %8.1f +-%4.1f %12.2f %10.2f %10.1f %9.1f%%\n", t, b.pp, b.pp_std, b.pp_gops, b.tg,
                    b.tg_std, b.bytes_per_token / 1e6, b.gbps, b.bandwidth_gbps, 100.0 * b.gbps / b.bandwidth_gbps);
      }
    }
    if (a->json) std::printf("%s\n", (all.size() == 1 ? all[0] : all).dump(2).c_str());
    return OkStatus();
  });
}

}  // namespace lowbit::tools

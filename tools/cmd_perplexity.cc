// `lowbit perplexity -m MODEL -f TEXT [-c CTX] [--chunks N] [-t T] [--json]`.
#include <cstdio>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "lowbit/pipeline/model_source.h"
#include "train_flags.h"
#include "lowbit/advise/guard.h"
#include "lowbit/eval/perplexity.h"
#include "lowbit/formats/hf.h"
#include "tp.h"

namespace lowbit::tools {

void AddPerplexity(CLI::App& app, Registry& r) {
  struct Args {
    std::string model, file;
    int64_t ctx = 0, chunks = -1;
    int threads = 0;
    bool json = false, kv_f16 = false;
    std::string save, base;
    Residency residency = Residency::kAuto;
    LoraFlags lora;
    TpFlags tp;
    bool no_memory_check = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand("perplexity", "Perplexity of a GGUF model on a text file (llama.cpp's method)");
  sub->add_option("-m,--model", a->model, "model: GGUF, Hugging Face folder (float or GPTQ/AWQ), safetensors or llama2.c file")->required();
  sub->add_option("-f,--file", a->file, "UTF-8 text file")->required();
  sub->add_option("-c,--ctx-size", a->ctx, "tokens per chunk (default: the model's context)")->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  sub->add_option("--chunks", a->chunks, "score at most N chunks");
  sub->add_option("-t,--threads", a->threads, "threads (default: all)")->check(CLI::Range(0, 1024));
  sub->add_option("--save-logits", a->save, "write the token distributions (reference for --kl-divergence)");
  sub->add_option("--kl-divergence", a->base, "compare with distributions saved by --save-logits");
  sub->add_flag("--json", a->json, "print one JSON object");
  AddCacheTypeOption(sub, &a->kv_f16);
  AddResidencyOptions(sub, &a->residency);
  AddLoraOptions(sub, &a->lora);
  AddTpOptions(sub, &a->tp);
  AddMemoryCheckOption(sub, &a->no_memory_check);
  r.Add(sub, [a]() -> Status {
    if (!a->no_memory_check && MemoryCheckApplies(a->model)) {
      // A chunk's logits are kept for every token (ctx - 1 of them).
      LOWBIT_RETURN_IF_ERROR(RequireFit({.model = a->model, .n_ctx = a->ctx, .threads = a->threads, .kv_f16 = a->kv_f16,
                                         .logits_tokens = -1, .residency = a->residency}));
    }
    LOWBIT_ASSIGN_OR_RETURN(auto ctx, ModelContext::Open(a->model, a->residency, a->tp));
    LOWBIT_ASSIGN_OR_RETURN(auto specs, a->lora.Specs());
    LOWBIT_ASSIGN_OR_RETURN(auto adapters, ctx->AttachLora(specs));
    // Rank 0 reads the text; the others get its tokens.
    std::string text;
    Status read = OkStatus();
    if (ctx->leader()) {
      auto t = ReadTextFile(a->file, uint64_t{1} << 30);
      read = t.ok() ? OkStatus() : t.status();
      if (t.ok()) text = std::move(*t);
    }
    LOWBIT_RETURN_IF_ERROR(ctx->Agree(read));
    PerplexityOptions o{a->ctx, a->chunks, a->threads, a->save, a->base, a->kv_f16, ctx->comm()};
    const bool json = a->json;
    LOWBIT_ASSIGN_OR_RETURN(PerplexityResult res, Perplexity(ctx->model(), ctx->vocab(), text, o, [json](int64_t i, double ppl) {
      if (!json) std::fprintf(stderr, "[%lld]%.4f,%s", static_cast<long long>(i + 1), ppl, (i + 1) % 10 ? "" : "\n");
    }));
    if (!ctx->leader()) return OkStatus();
    if (json) {
      nlohmann::json j = {{"ppl", res.ppl}, {"ppl_err", res.ppl_err}, {"n_tokens", res.n_tokens},
                          {"n_chunks", res.n_chunks}, {"n_scored", res.n_scored}};
      if (res.has_kl) {
        j["kld_mean"] = res.kl.mean;
        j["kld_median"] = res.kl.median;
        j["kld_max"] = res.kl.max;
        j["top1_agreement"] = res.kl.top1_agreement;
        j["mean_delta_p"] = res.kl.mean_delta_p;
        j["ppl_base"] = res.kl.ppl_base;
        j["ppl_ratio"] = res.kl.ppl_ratio;
      }
      std::printf("%s\n", j.dump(2).c_str());
    } else {
      std::printf("\nFinal estimate: PPL = %.4f +/- %.5f  (%lld tokens, %lld chunks, %lld scored)\n", res.ppl,
                  res.ppl_err, static_cast<long long>(res.n_tokens), static_cast<long long>(res.n_chunks),
                  static_cast<long long>(res.n_scored));
      if (res.has_kl) {
        std::printf("KL-divergence vs base: mean %.6f  median %.6f  max %.6f  top-1 agreement %.2f%%  mean delta-p %+.4f%%  "
                    "PPL ratio %.4f (base PPL %.4f)\n", res.kl.mean, res.kl.median, res.kl.max, 100 * res.kl.top1_agreement,
                    100 * res.kl.mean_delta_p, res.kl.ppl_ratio, res.kl.ppl_base);
      }
    }
    return OkStatus();
  });
}

}  // namespace lowbit::tools

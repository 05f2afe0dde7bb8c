// `lowbit serve -m MODEL [--host 127.0.0.1] [--port 8080] [-np SLOTS] [-c CTX] [--api-key KEY] [-t T]
// [--chat-template NAME|FILE] [--lookup | --model-draft FILE] [--draft-max N] [--draft-min N] [--draft-fixed]`: the
// OpenAI-compatible server (src/lowbit/server/). Under mpirun, rank 0 serves and the other ranks run
// their shard of each step.
#include <csignal>
#include <cstdio>
#include <memory>

#include "commands.h"
#include "lowbit/parallel/mpi_comm.h"
#include "lowbit/server/serve.h"
#include "spec_flags.h"
#include "tp.h"

namespace lowbit::tools {
namespace {
std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }
}  // namespace

void AddServe(CLI::App& app, Registry& r) {
  auto o = std::make_shared<server::ServeOptions>();
  auto tp = std::make_shared<TpFlags>();
  auto spec = std::make_shared<SpecFlags>();
  CLI::App* sub = app.add_subcommand("serve", "Serve a model over OpenAI's HTTP API (continuous batching, chat page at /)");
  sub->add_option("-m,--model", o->model, "GGUF model")->required();
  sub->add_option("--host", o->http.host, "address to listen on (default 127.0.0.1)");
  sub->add_option("--port", o->http.port, "port (default 8080; 0: any free port)")->check(CLI::Range(0, 65535));
  sub->add_option("--parallel", o->slots, "slots: requests decoded together (-np; default 4)")->check(CLI::Range(1, 256));
  sub->add_option("-c,--ctx-size", o->ctx, "KV cache positions over all slots (default: slots x the model's context, at most 4096 each)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 24));
  sub->add_option("-t,--threads", o->threads, "threads (default: all)")->check(CLI::Range(0, 1024));
  sub->add_option("--api-key", o->http.api_key, "require 'Authorization: Bearer KEY'");
  sub->add_option("--chat-template", o->chat_template, "chat template: a built-in name (llama2, llama3, chatml, ...) or a file");
  sub->add_option("--alias", o->model_name, "model id reported by /v1/models (default: the file name)");
  sub->add_option("--queue", o->max_queue, "requests that may wait for a slot; more get 503 (default 16)")->check(CLI::Range(0, 1 << 16));
  sub->add_option("--prompt-chunk", o->prompt_chunk, "prompt tokens a slot reads per step (default 128)")->check(CLI::Range(int64_t{1}, int64_t{1} << 16));
  sub->add_option("--max-body", o->http.max_body, "largest request body in bytes; larger gets 413 (default 8 MiB)")->check(CLI::Range(size_t{1024}, size_t{1} << 32));
  AddCacheTypeOption(sub, &o->kv_f16);
  AddResidencyOptions(sub, &o->residency);
  AddTpOptions(sub, tp.get());
  AddSpecOptions(sub, spec.get());
  r.Add(sub, [o, tp, spec]() -> Status {
    LOWBIT_RETURN_IF_ERROR(SpecOptionsFromFlags(*spec, &o->spec));  // the draft model: Serve opens o->model_draft
    o->model_draft = spec->draft;
    std::signal(SIGINT, OnSignal);
    std::signal(SIGTERM, OnSignal);
    std::signal(SIGPIPE, SIG_IGN);
    auto say = [](const std::string& line) {
      std::fprintf(stderr, "lowbit serve: %s\n", line.c_str());
      std::fflush(stderr);
    };
    if (!StartedByMpiLauncher()) return server::Serve(*o, g_stop, say);
    // Tensor parallel: every rank loads its shard first (ModelContext agrees on the outcome); rank 0
    // then listens, the others follow its steps. mpirun stops the ranks with SIGTERM.
    LOWBIT_ASSIGN_OR_RETURN(auto ctx, ModelContext::Open(o->model, o->residency, *tp));
    if (!ctx->leader()) return server::ServeFollower(*o, ctx->model(), ctx->comm());
    return server::Serve(*o, ctx->comm(), [&ctx]() -> Expected<server::ServedModel> {
      return server::ServedModel{.file = &ctx->file(), .model = &ctx->model(), .vocab = &ctx->vocab(), .residency = ctx->residency()};
    }, g_stop, say);
  });
}

}  // namespace lowbit::tools

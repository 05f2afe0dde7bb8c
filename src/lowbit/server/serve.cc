#include "lowbit/server/serve.h"

#include <chrono>
#include <filesystem>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "lowbit/engine/chat_format.h"
#include "lowbit/engine/speculative.h"
#include "lowbit/formats/gguf_vocab.h"
#include "lowbit/parallel/agree.h"
#include "lowbit/pipeline/model_source.h"

namespace lowbit::server {
namespace {

bool Several(Comm* comm) { return comm != nullptr && comm->size() > 1; }

// The scheduler's options for these flags and this model; the same on every rank.
Expected<SchedulerOptions> SchedulerOptionsFor(const ServeOptions& o, const LlamaConfig& c, Comm* comm) {
  if (o.slots < 1 || o.slots > 256) return Errorf("-np {}: the number of slots must be 1..256", o.slots);
  const int64_t per_slot_default = std::min<int64_t>(c.n_ctx_train, 4096);
  const int64_t total = o.ctx > 0 ? o.ctx : per_slot_default * o.slots;
  const int64_t per_slot = total / o.slots;
  if (per_slot < 8) return Errorf("-c {} over {} slots leaves {} positions per slot; raise -c", total, o.slots, per_slot);
  if (!o.model_draft.empty() && Several(comm)) return Errorf("--model-draft runs on one rank only, not under mpirun");
  if (o.spec.draft_min > o.spec.draft_max) {
    return Errorf("--draft-min {} is above --draft-max {}", o.spec.draft_min, o.spec.draft_max);
  }
  return SchedulerOptions{.n_slots = o.slots, .n_ctx = per_slot, .threads = o.threads, .kv_f16 = o.kv_f16,
                          .max_batch = std::max<int64_t>(512, o.slots), .prompt_chunk = o.prompt_chunk,
                          .max_queue = o.max_queue, .spec = o.spec, .comm = comm};
}

}  // namespace

Status Serve(const ServeOptions& o, const std::atomic<bool>& stop, const std::function<void(const std::string&)>& on_event) {
  std::optional<GgufFile> g;
  std::optional<LlamaModel> model;
  Vocab vocab;
  std::optional<GgufFile> draft_g;
  std::optional<LlamaModel> draft;
  return Serve(o, nullptr, [&]() -> Expected<ServedModel> {
    LOWBIT_ASSIGN_OR_RETURN(GgufFile file, OpenModel(o.model, o.residency));
    g.emplace(std::move(file));
    LOWBIT_ASSIGN_OR_RETURN(LlamaModel m, LlamaModel::Load(*g));
    model.emplace(std::move(m));
    LOWBIT_ASSIGN_OR_RETURN(vocab, VocabFromGguf(*g));
    ServedModel served{.file = &*g, .model = &*model, .vocab = &vocab, .residency = g->in_memory() ? "read into memory" : "mapped"};
    if (!o.model_draft.empty()) {
      LOWBIT_ASSIGN_OR_RETURN(GgufFile df, OpenModel(o.model_draft, o.residency));
      draft_g.emplace(std::move(df));
      LOWBIT_ASSIGN_OR_RETURN(LlamaModel dm, LlamaModel::Load(*draft_g));
      draft.emplace(std::move(dm));
      LOWBIT_ASSIGN_OR_RETURN(Vocab dv, VocabFromGguf(*draft_g));
      auto name = [](const std::string& p) { return std::filesystem::path(p).filename().string(); };
      LOWBIT_RETURN_IF_ERROR(CheckDraftVocabulary(name(o.model), *model, vocab, name(o.model_draft), *draft, dv));
      served.draft = &*draft;
    }
    return served;
  }, stop, on_event);
}

Status Serve(const ServeOptions& o, Comm* comm, const ModelLoader& load, const std::atomic<bool>& stop,
             const std::function<void(const std::string&)>& on_event) {
  auto say = [&](const std::string& s) {
    if (on_event) on_event(s);
  };
  HttpServer http(o.http);
  const auto t0 = std::chrono::steady_clock::now();
  ServedModel served;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<ChatFormatter> chat;
  SchedulerOptions so;
  // Everything that can fail before serving; with several ranks, all of them learn the outcome.
  Status start = [&]() -> Status {
    if (o.slots < 1 || o.slots > 256) return Errorf("-np {}: the number of slots must be 1..256", o.slots);
    LOWBIT_ASSIGN_OR_RETURN(int port, http.Start(o.slots));
    say(fmt::format("listening on http://{}:{}", o.http.host, port));
    LOWBIT_ASSIGN_OR_RETURN(served, load());
    LOWBIT_ASSIGN_OR_RETURN(tokenizer, Tokenizer::Create(*served.vocab));
    std::string model_template;
    if (served.file->Find("tokenizer.chat_template") != nullptr) {
      LOWBIT_ASSIGN_OR_RETURN(model_template, served.file->GetString("tokenizer.chat_template"));
    }
    if (!o.chat_template.empty() || !model_template.empty()) {
      LOWBIT_ASSIGN_OR_RETURN(std::string source, ResolveChatTemplate(o.chat_template, model_template));
      LOWBIT_ASSIGN_OR_RETURN(ChatFormatter f, ChatFormatter::Create(source, *served.vocab));
      chat = std::make_unique<ChatFormatter>(std::move(f));
    }
    LOWBIT_ASSIGN_OR_RETURN(so, SchedulerOptionsFor(o, served.model->config(), comm));
    so.spec.draft = served.draft;
    if (!o.model_draft.empty() && served.draft == nullptr) return Errorf("--model-draft: the draft model was not loaded");
    return OkStatus();
  }();
  if (Several(comm)) start = AgreeOnStatus(comm, start);
  LOWBIT_RETURN_IF_ERROR(start);
  Scheduler scheduler(*served.model, *tokenizer, *served.vocab, so);
  ServingState state;
  state.model_name = o.model_name.empty() ? std::filesystem::path(o.model).filename().string() : o.model_name;
  state.vocab = served.vocab;
  state.tokenizer = tokenizer.get();
  state.scheduler = &scheduler;
  state.chat = chat.get();
  state.n_vocab = served.model->config().n_vocab;
  http.SetReady(state);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::string spec = !so.spec.enabled() ? ""
                           : fmt::format(", drafts from {} ({}{} per step)",
                                         so.spec.lookup ? "prompt lookup" : std::filesystem::path(o.model_draft).filename().string(),
                                         o.spec.adaptive ? "up to " : "", o.spec.draft_max);
  say(fmt::format("model {} loaded in {:.1f} s ({}): {} slots x {} positions, {} threads{}{}{}", state.model_name, load_s,
                  served.residency, o.slots, so.n_ctx, o.threads > 0 ? o.threads : static_cast<int>(std::thread::hardware_concurrency()),
                  Several(comm) ? " per rank" : "", spec,
                  chat ? "" : "; no chat template (chat requests get 400; pass --chat-template)"));
  while (!stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  say("shutting down");
  http.Stop();
  return OkStatus();
}

Status ServeFollower(const ServeOptions& o, const LlamaModel& model, Comm* comm) {
  if (!Several(comm) || comm->rank() == 0) return Errorf("ServeFollower runs on ranks 1.. of several");
  Expected<SchedulerOptions> so = SchedulerOptionsFor(o, model.config(), comm);
  LOWBIT_RETURN_IF_ERROR(AgreeOnStatus(comm, so.ok() ? OkStatus() : so.status()));
  return FollowScheduler(model, *so);
}

}  // namespace lowbit::server

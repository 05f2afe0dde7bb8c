#include "lowbit/server/serve.h"

#include <chrono>
#include <filesystem>
#include <thread>

#include <fmt/format.h>

#include "lowbit/engine/chat_format.h"
#include "lowbit/formats/gguf_reader.h"
#include "lowbit/formats/gguf_vocab.h"
#include "lowbit/model/llama.h"
#include "lowbit/pipeline/model_source.h"

namespace lowbit::server {

Status Serve(const ServeOptions& o, const std::atomic<bool>& stop, const std::function<void(const std::string&)>& on_event) {
  auto say = [&](const std::string& s) {
    if (on_event) on_event(s);
  };
  if (o.slots < 1 || o.slots > 256) return Errorf("-np {}: the number of slots must be 1..256", o.slots);
  HttpServer http(o.http);
  LOWBIT_ASSIGN_OR_RETURN(int port, http.Start(o.slots));
  say(fmt::format("listening on http://{}:{}", o.http.host, port));

  const auto t0 = std::chrono::steady_clock::now();
  LOWBIT_ASSIGN_OR_RETURN(GgufFile g, OpenModel(o.model, o.residency));
  LOWBIT_ASSIGN_OR_RETURN(LlamaModel model, LlamaModel::Load(g));
  LOWBIT_ASSIGN_OR_RETURN(Vocab vocab, VocabFromGguf(g));
  LOWBIT_ASSIGN_OR_RETURN(auto tokenizer, Tokenizer::Create(vocab));
  std::string model_template;
  if (g.Find("tokenizer.chat_template") != nullptr) {
    LOWBIT_ASSIGN_OR_RETURN(model_template, g.GetString("tokenizer.chat_template"));
  }
  std::unique_ptr<ChatFormatter> chat;
  if (!o.chat_template.empty() || !model_template.empty()) {
    LOWBIT_ASSIGN_OR_RETURN(std::string source, ResolveChatTemplate(o.chat_template, model_template));
    LOWBIT_ASSIGN_OR_RETURN(ChatFormatter f, ChatFormatter::Create(source, vocab));
    chat = std::make_unique<ChatFormatter>(std::move(f));
  }
  const int64_t per_slot_default = std::min<int64_t>(model.config().n_ctx_train, 4096);
  const int64_t total = o.ctx > 0 ? o.ctx : per_slot_default * o.slots;
  const int64_t per_slot = total / o.slots;
  if (per_slot < 8) return Errorf("-c {} over {} slots leaves {} positions per slot; raise -c", total, o.slots, per_slot);
  SchedulerOptions so{.n_slots = o.slots, .n_ctx = per_slot, .threads = o.threads, .kv_f16 = o.kv_f16,
                      .max_batch = std::max<int64_t>(512, o.slots), .prompt_chunk = o.prompt_chunk, .max_queue = o.max_queue};
  Scheduler scheduler(model, *tokenizer, vocab, so);
  ServingState state;
  state.model_name = o.model_name.empty() ? std::filesystem::path(o.model).filename().string() : o.model_name;
  state.vocab = &vocab;
  state.tokenizer = tokenizer.get();
  state.scheduler = &scheduler;
  state.chat = chat.get();
  state.n_vocab = model.config().n_vocab;
  http.SetReady(state);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  say(fmt::format("model {} loaded in {:.1f} s ({}): {} slots x {} positions, {} threads{}", state.model_name, load_s,
                  g.in_memory() ? "read into memory" : "mapped", o.slots, per_slot, o.threads > 0 ? o.threads : static_cast<int>(std::thread::hardware_concurrency()),
                  chat ? "" : "; no chat template (chat requests get 400; pass --chat-template)"));
  while (!stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  say("shutting down");
  http.Stop();
  return OkStatus();
}

}  // namespace lowbit::server

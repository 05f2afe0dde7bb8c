// `lowbit chat -m MODEL [sampling flags]`: a conversation in the terminal with the model's chat
// template. Replies stream as they are generated; Ctrl-C stops a reply (the chat goes on); the
// history stays in the KV cache between turns. Commands: /reset, /system TEXT, /bye (or Ctrl-D).
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>

#include "commands.h"
#include "lowbit/engine/chat_format.h"
#include "lowbit/formats/gguf_reader.h"
#include "lowbit/formats/gguf_vocab.h"
#include "lowbit/pipeline/model_source.h"

namespace lowbit::tools {
namespace {

std::atomic<bool> g_interrupted{false};
void OnInterrupt(int) { g_interrupted = true; }

enum class Read { kLine, kEof, kInterrupted };

// One line from stdin. SIGINT may be delivered to any of the process's threads (the scheduler's
// workers included), so a blocking read(2) in this thread would not always see EINTR: poll with a
// short timeout and look at the flag the handler sets.
Read ReadLine(std::string* line) {
  line->clear();
  char c;
  while (true) {
    if (g_interrupted.exchange(false)) return Read::kInterrupted;
    pollfd p{0, POLLIN, 0};
    const int r = ::poll(&p, 1, 50);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) continue;
    const ssize_t n = ::read(0, &c, 1);
    if (n == 1) {
      if (c == '\n') return Read::kLine;
      *line += c;
    } else if (n == 0) {
      return line->empty() ? Read::kEof : Read::kLine;
    } else if (errno != EINTR) {
      return Read::kEof;
    }
  }
}

void Out(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fflush(stdout);
}

}  // namespace

void AddChat(CLI::App& app, Registry& r) {
  struct Args {
    std::string model, chat_template, system;
    int64_t n_ctx = 0, n_predict = -1, seed = -1;
    int threads = 0;
    bool kv_f16 = false;
    SamplerParams sampling;
    Residency residency = Residency::kAuto;
  };
  auto a = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand("chat", "Chat with a model in the terminal (/reset, /system TEXT, /bye; Ctrl-C stops a reply)");
  sub->add_option("-m,--model", a->model, "GGUF model")->required();
  sub->add_option("--chat-template", a->chat_template, "chat template: a built-in name (llama2, llama3, chatml, ...) or a file");
  sub->add_option("--system", a->system, "system prompt");
  sub->add_option("-n,--n-predict", a->n_predict, "most tokens per reply (default: to the context's end)")->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  sub->add_option("-c,--ctx-size", a->n_ctx, "context size (default: the model's)")->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  sub->add_option("-t,--threads", a->threads, "threads (default: all)")->check(CLI::Range(0, 1024));
  sub->add_option("--temp", a->sampling.temp, "temperature (0: greedy)")->check(CLI::Range(0.0f, 100.0f));
  sub->add_option("--top-k", a->sampling.top_k, "top-k (0: off)")->check(CLI::Range(0, 1 << 24));
  sub->add_option("--top-p", a->sampling.top_p, "top-p (1: off)")->check(CLI::Range(0.0f, 1.0f));
  sub->add_option("--min-p", a->sampling.min_p, "min-p (0: off)")->check(CLI::Range(0.0f, 1.0f));
  sub->add_option("--repeat-penalty", a->sampling.repeat_penalty, "repetition penalty (1: off)")->check(CLI::Range(0.0f, 10.0f));
  sub->add_option("--seed", a->seed, "random seed (default: time)");
  AddCacheTypeOption(sub, &a->kv_f16);
  AddResidencyOptions(sub, &a->residency);
  r.Add(sub, [a]() -> Status {
    LOWBIT_ASSIGN_OR_RETURN(GgufFile g, OpenModel(a->model, a->residency));
    LOWBIT_ASSIGN_OR_RETURN(LlamaModel model, LlamaModel::Load(g));
    LOWBIT_ASSIGN_OR_RETURN(Vocab vocab, VocabFromGguf(g));
    LOWBIT_ASSIGN_OR_RETURN(auto tokenizer, Tokenizer::Create(vocab));
    std::string model_template;
    if (g.Find("tokenizer.chat_template") != nullptr) {
      LOWBIT_ASSIGN_OR_RETURN(model_template, g.GetString("tokenizer.chat_template"));
    }
    LOWBIT_ASSIGN_OR_RETURN(std::string source, ResolveChatTemplate(a->chat_template, model_template));
    LOWBIT_ASSIGN_OR_RETURN(ChatFormatter chat, ChatFormatter::Create(source, vocab));
    const int64_t n_ctx = a->n_ctx > 0 ? a->n_ctx : model.config().n_ctx_train;
    Scheduler sched(model, *tokenizer, vocab, SchedulerOptions{.n_slots = 1, .n_ctx = n_ctx, .threads = a->threads, .kv_f16 = a->kv_f16});
    GenerationRequest defaults;
    defaults.sampling = a->sampling;
    defaults.sampling.seed = a->seed >= 0 ? static_cast<uint64_t>(a->seed)
                                          : static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
    defaults.max_tokens = a->n_predict;
    Conversation conv(sched, chat, *tokenizer, defaults);
    conv.SetSystem(a->system);
    struct sigaction sa {};
    sa.sa_handler = OnInterrupt;  // no SA_RESTART: a read at the prompt returns with EINTR
    sigaction(SIGINT, &sa, nullptr);
    std::fprintf(stderr, "lowbit chat: %s, context %lld. Ctrl-C stops a reply; /reset, /system TEXT, /bye or Ctrl-D to quit.\n",
                 a->model.c_str(), static_cast<long long>(n_ctx));
    std::string line;
    while (true) {
      Out("> ");
      const Read rd = ReadLine(&line);
      if (rd == Read::kEof) break;
      if (rd == Read::kInterrupted) {
        Out("\n(Ctrl-D or /bye to quit)\n");
        continue;
      }
      if (line.empty()) continue;
      if (line == "/bye" || line == "/exit" || line == "/quit") break;
      if (line == "/reset") {
        conv.Reset();
        Out("(conversation reset)\n");
        continue;
      }
      if (line.rfind("/system", 0) == 0) {
        conv.SetSystem(line.size() > 8 ? line.substr(8) : "");
        conv.Reset();
        Out("(system prompt set; conversation reset)\n");
        continue;
      }
      auto ch = conv.Ask(line);
      if (!ch.ok()) {
        Out("error: " + ch.status().message() + "\n");
        continue;
      }
      g_interrupted = false;
      std::string reply;
      GenerationEvent ev;
      const auto t0 = std::chrono::steady_clock::now();
      int64_t tokens = 0, prompt_tokens = 0, reused = 0;
      bool stopped = false;
      while (true) {
        if (g_interrupted.exchange(false) && !stopped) {
          (*ch)->Cancel();
          stopped = true;
          break;
        }
        if (!(*ch)->Next(&ev, std::chrono::milliseconds(50))) continue;
        if (ev.kind == GenerationEvent::Kind::kText) {
          reply += ev.text;
          tokens += static_cast<int64_t>(ev.tokens.size());
          Out(ev.text);
        } else {
          if (ev.kind == GenerationEvent::Kind::kError) Out("\nerror: " + ev.text);
          prompt_tokens = ev.prompt_tokens;
          reused = ev.cached_tokens;
          break;
        }
      }
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      Out(stopped ? "\n[stopped]\n" : "\n");
      if (stopped) {
        std::fprintf(stderr, "(%lld tokens)\n", static_cast<long long>(tokens));
      } else {
        std::fprintf(stderr, "(%lld tokens, %.1f tok/s; prompt %lld tokens, %lld of them reused from the cache)\n", static_cast<long long>(tokens),
                     s > 0 ? static_cast<double>(tokens) / s : 0.0, static_cast<long long>(prompt_tokens), static_cast<long long>(reused));
      }
      conv.Answered(reply);
    }
    Out("\n");
    return OkStatus();
  });
}

}  // namespace lowbit::tools

// The HTTP server of `lowbit serve` (cpp-httplib): OpenAI's endpoints over the engine's scheduler.
//
//   POST /v1/chat/completions, /v1/completions   streamed (server-sent events, `data: {...}`
//                                                 chunks, then `data: [DONE]`) or not
//   GET  /v1/models, /health (503 while loading), /metrics (Prometheus text), / (the chat page)
//   POST /tokenize, /detokenize, /apply-template  (llama-server's helpers)
//
// Errors are OpenAI's `{"error": {"message", "type", "param", "code"}}`: 400 for bad JSON, wrong
// types and prompts that do not fit, 401 for a missing or wrong key (--api-key; / and /health
// stay open), 404 for unknown paths, 413 for bodies over the limit, 503 with Retry-After while
// loading or when the queue is full. A client that goes away cancels its request: streams notice
// at the next write, and a request with nothing to write probes the connection twice a second
// (an SSE comment, or a space before a JSON body), so its slot is freed within about a second.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "lowbit/base/status.h"
#include "lowbit/engine/chat_format.h"
#include "lowbit/engine/scheduler.h"
#include "lowbit/tokenizer/tokenizer.h"

namespace lowbit::server {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8080;             // 0: any free port
  std::string api_key;         // empty: no key needed
  size_t max_body = 8u << 20;  // bytes; larger bodies get 413
  int threads = 0;             // HTTP worker threads; 0: 2 * slots + 8
  int read_timeout_s = 10, write_timeout_s = 30;
};

// What is served once the model is loaded.
struct ServingState {
  std::string model_name;
  const Vocab* vocab = nullptr;
  const Tokenizer* tokenizer = nullptr;
  Scheduler* scheduler = nullptr;
  const ChatFormatter* chat = nullptr;  // null: the model has no chat template (chat requests get 400)
  int64_t n_vocab = 0;
};

class HttpServer {
 public:
  explicit HttpServer(HttpOptions o);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts serving on its own thread; returns the port. Until SetReady, /health and
  // the API answer 503.
  Expected<int> Start(int slots_hint);
  void SetReady(const ServingState& s);
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lowbit::server

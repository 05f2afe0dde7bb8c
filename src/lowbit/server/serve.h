// `lowbit serve` as a library call: listen first (so /health answers 503 while the model loads),
// load the model, its vocabulary and chat template, start the scheduler, serve until `stop`.
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "lowbit/base/mapped_file.h"
#include "lowbit/base/status.h"
#include "lowbit/server/http_server.h"

namespace lowbit::server {

struct ServeOptions {
  std::string model;           // GGUF file
  std::string model_name;      // the id /v1/models reports; empty: the file's name
  std::string chat_template;   // NAME or FILE; empty: the model's
  HttpOptions http;
  int slots = 4;               // -np
  int64_t ctx = 0;             // KV positions over all slots (-c); 0: slots x min(model's context, 4096)
  int threads = 0;
  bool kv_f16 = false;
  int64_t prompt_chunk = 128;
  int max_queue = 16;
  Residency residency = Residency::kAuto;
};

// Runs until *stop becomes true. `on_event` gets one-line status messages ("listening on ...",
// "model loaded ..."); errors before serving return a Status.
Status Serve(const ServeOptions& o, const std::atomic<bool>& stop, const std::function<void(const std::string&)>& on_event);

}  // namespace lowbit::server

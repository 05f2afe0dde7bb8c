// `lowbit serve` as a library call: listen first (so /health answers 503 while the model loads),
// load the model, its vocabulary and chat template, start the scheduler, serve until `stop`. Under
// mpirun (tools/cmd_serve.cc) rank 0 serves and the other ranks follow its steps on their shards.
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "lowbit/base/mapped_file.h"
#include "lowbit/base/status.h"
#include "lowbit/engine/generate.h"
#include "lowbit/formats/gguf_reader.h"
#include "lowbit/model/llama.h"
#include "lowbit/parallel/comm.h"
#include "lowbit/server/http_server.h"
#include "lowbit/tokenizer/vocab.h"

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
  SpeculativeOptions spec;     // --lookup, --draft-max, ... (spec.draft: from model_draft)
  std::string model_draft;     // --model-draft: a GGUF with the model's vocabulary (one rank)
  Residency residency = Residency::kAuto;
};

// Runs until *stop becomes true. `on_event` gets one-line status messages ("listening on ...",
// "model loaded ..."); errors before serving return a Status. Opens o.model itself (one rank).
Status Serve(const ServeOptions& o, const std::atomic<bool>& stop, const std::function<void(const std::string&)>& on_event);

// A model the caller opened (tools/: one rank's shard of a tensor-parallel job). The pointers stay
// valid until Serve returns.
struct ServedModel {
  const GgufFile* file = nullptr;  // its metadata (the chat template)
  const LlamaModel* model = nullptr;
  const Vocab* vocab = nullptr;
  std::string residency;           // how the weights are held, for the log line
  const LlamaModel* draft = nullptr;  // --model-draft, its vocabulary checked
};
using ModelLoader = std::function<Expected<ServedModel>()>;

// The same with the model from `load`, called once the port listens (so /health says 503 while it
// runs). Tensor parallel: `comm` has several ranks, this process is rank 0 and the others run
// ServeFollower with the same options; every rank learns whether the start succeeded (one line
// each on failure). comm nullptr: one rank.
Status Serve(const ServeOptions& o, Comm* comm, const ModelLoader& load, const std::atomic<bool>& stop,
             const std::function<void(const std::string&)>& on_event);

// Ranks 1.. of a tensor-parallel server: their shard of every step rank 0 runs, until it stops.
Status ServeFollower(const ServeOptions& o, const LlamaModel& model, Comm* comm);

}  // namespace lowbit::server

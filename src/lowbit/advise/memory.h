// The memory `lowbit run` (and `lowbit perplexity`) holds for a model, predicted before loading: the
// model's weights (read into its own 2 MiB pages with the file's header mapped, or the file mapped:
// then the token embedding's rows that are never read stay out), the session's KV cache and buffers exactly as LlamaSession sizes
// them (model/session_memory.h), the generation loop's buffers, and the process itself (code,
// parsed metadata, vocabulary and tokenizer tables). The peak resident set of `lowbit run` is this
// total; tests/advise/memory_test.cc runs `lowbit run` and compares.
#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

#include "lowbit/advise/model_source.h"

namespace lowbit {

struct RunMemory {
  uint64_t weights = 0;   // the model's weights (and the file's header) resident
  uint64_t kv_cache = 0;  // every slot's K/V cache
  uint64_t buffers = 0;   // the session's other buffers, the sampler's and the generation loop's
  uint64_t overhead = 0;  // the process: code, parsed metadata, vocabulary, tokenizer
  bool in_memory = true;  // the file read into memory (else mapped)
  uint64_t total() const { return weights + kv_cache + buffers + overhead; }
  nlohmann::json ToJson() const;
};

struct RunShape {
  int64_t n_ctx = 0;         // 0: the model's training context (what run uses)
  int threads = 0;           // 0: all hardware threads
  bool kv_f16 = false;
  int slots = 1;             // sequences with a KV cache each (a server's parallel slots)
  int64_t logits_tokens = 1; // tokens whose logits are kept: perplexity keeps a whole chunk's
  bool in_memory = true;     // read into memory (MappedFile::Read) or mapped
  bool huge_pages = true;    // the copy is in 2 MiB pages (transparent huge pages offered)
};

// The context `r` asks for: r.n_ctx, or the model's training context.
int64_t ContextOf(const PlannedModel& p, const RunShape& r);
RunMemory PredictRunMemory(const PlannedModel& p, const RunShape& r);

// The bytes a model that holds its weights in memory keeps for `m`'s views (the whole model, or a
// tensor-parallel rank's shard with the embedding and classifier whole): each view's rows
// ImageRowStep apart (model/shard.h), every expert of a mixture.
uint64_t HeldWeightBytes(const LlamaModel& m);

// The session `lowbit run` and `perplexity` build (one slot), or `lowbit serve` with `slots` > 1:
// one KV cache per slot, a step of max(512, slots) tokens, batch-invariant products
// (server/serve.cc, engine/scheduler.cc).
SessionOptions SessionOptionsFor(int64_t n_ctx, int threads, bool kv_f16, int slots);

// The process's own resident memory besides the model, its session and its vocabulary: code, libraries,
// the thread pool (measured with `lowbit run` on stories5M and the tinyllama-1.1b synthetic:
// docs/PERFORMANCE.md, "Memory").
inline constexpr uint64_t kProcessBytes = 6u << 20;
// Heap per vocabulary entry and per BPE merge held while running: the parsed GGUF metadata, the
// Vocab and the tokenizer's tables (bench/vocab_memory.cc on llama.cpp's vocabulary files, a least-
// squares fit over five vocabularies, residuals under 2 MB: docs/PERFORMANCE.md, "Memory").
inline constexpr uint64_t kBytesPerVocabEntry = 334;
inline constexpr uint64_t kBytesPerMerge = 132;

}  // namespace lowbit

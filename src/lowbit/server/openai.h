// OpenAI's HTTP API shapes: requests of /v1/chat/completions and /v1/completions parsed and
// checked field by field (a wrong type or range is an ApiError naming the field), and the
// response objects and stream chunks built from generation events. No I/O here.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "lowbit/engine/scheduler.h"

namespace lowbit::server {

using Json = nlohmann::ordered_json;

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // the field, when one is at fault
  std::string code;   // e.g. "context_length_exceeded", "invalid_api_key"
  Json ToJson() const;
};

// A parsed request: for chat, `messages` (each content flattened to a string); for completions,
// the prompt as text or as token ids.
struct ApiRequest {
  bool chat = false;
  Json messages;                       // chat: [{role, content}, ...]
  std::string prompt_text;             // completions
  std::vector<int32_t> prompt_tokens;  // completions given token ids
  bool prompt_is_tokens = false;
  bool stream = false, include_usage = false;
  bool logprobs = false;
  int top_logprobs = 0;
  GenerationRequest gen;               // sampling, max_tokens, stop, ignore_eos (no prompt yet)
  bool seed_given = false;
};

// Parses the body of a chat (chat = true) or completions request; `n_vocab` bounds token ids.
std::variant<ApiRequest, ApiError> ParseRequest(const std::string& body, bool chat, int64_t n_vocab);

// The pieces responses are made of.
struct ResponseMeta {
  std::string id, model;
  int64_t created = 0;
  bool chat = false;
};

// A token's text and bytes for logprobs.
using TokenTextFn = std::function<std::string(int32_t)>;

Json LogprobsJson(const std::vector<TokenLogprob>& toks, const TokenTextFn& text, bool chat, size_t text_offset);
Json UsageJson(const GenerationEvent& done);
// Non-streaming response.
Json CompletionJson(const ResponseMeta& m, const std::string& text, const GenerationEvent& done, const Json& logprobs);
// Stream chunks: the first (chat: the role), a text delta, the last (finish_reason), usage.
Json ChunkJson(const ResponseMeta& m, const std::optional<std::string>& text, bool role, const std::string* finish, const Json& logprobs);
Json UsageChunkJson(const ResponseMeta& m, const GenerationEvent& done);

// JSON text with invalid UTF-8 replaced (never throws).
std::string Dump(const Json& j);

}  // namespace lowbit::server

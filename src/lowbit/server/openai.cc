#include "lowbit/server/openai.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace lowbit::server {
namespace {

ApiError Bad(const std::string& param, const std::string& message) { return ApiError{400, message, "invalid_request_error", param, ""}; }

std::string TypeName(const Json& j) {
  switch (j.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::boolean: return "a boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: return "an integer";
    case Json::value_t::number_float: return "a number";
    case Json::value_t::string: return "a string";
    case Json::value_t::array: return "an array";
    case Json::value_t::object: return "an object";
    default: return "something else";
  }
}

// Optional number field in [lo, hi]; *out unchanged when absent or null.
std::optional<ApiError> Number(const Json& body, const char* key, double lo, double hi, float* out) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) return Bad(key, std::string("'") + key + "' must be a number, not " + TypeName(*it));
  const double v = it->get<double>();
  if (!(v >= lo && v <= hi)) return Bad(key, fmt::format("'{}' must be between {} and {}, not {}", key, lo, hi, v));
  *out = static_cast<float>(v);
  return std::nullopt;
}

std::optional<ApiError> Integer(const Json& body, const char* key, int64_t lo, int64_t hi, int64_t* out, bool* given = nullptr) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (it->is_number_float()) {
    const double d = it->get<double>();
    if (d != std::floor(d)) return Bad(key, std::string("'") + key + "' must be an integer, not " + it->dump());
  }
  if (!it->is_number()) return Bad(key, std::string("'") + key + "' must be an integer, not " + TypeName(*it));
  // Compared in the number's own type: as a double, INT64_MAX rounds up to 2^63, and converting a
  // float of 2^63 (or an unsigned above INT64_MAX) to int64 is out of range.
  int64_t v = 0;
  bool in_range;
  if (it->is_number_unsigned()) {
    const uint64_t u = it->get<uint64_t>();
    in_range = u <= static_cast<uint64_t>(INT64_MAX) && static_cast<int64_t>(u) >= lo && static_cast<int64_t>(u) <= hi;
    v = static_cast<int64_t>(u);
  } else if (it->is_number_integer()) {
    v = it->get<int64_t>();
    in_range = v >= lo && v <= hi;
  } else {
    const double d = it->get<double>();
    in_range = d >= static_cast<double>(lo) && d < 9223372036854775808.0 && d <= static_cast<double>(hi);
    if (in_range) v = static_cast<int64_t>(d);
  }
  if (!in_range) return Bad(key, fmt::format("'{}' must be between {} and {}, not {}", key, lo, hi, it->dump()));
  *out = v;
  if (given != nullptr) *given = true;
  return std::nullopt;
}

std::optional<ApiError> Bool(const Json& body, const char* key, bool* out) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) return Bad(key, std::string("'") + key + "' must be a boolean, not " + TypeName(*it));
  *out = it->get<bool>();
  return std::nullopt;
}

// A message's content: a string, null, or an array of {"type": "text", "text": ...} parts.
std::variant<std::string, ApiError> Content(const Json& c, const std::string& where) {
  if (c.is_null()) return std::string();
  if (c.is_string()) return c.get<std::string>();
  if (!c.is_array()) return Bad(where, "'" + where + "' must be a string or an array of text parts, not " + TypeName(c));
  std::string text;
  for (size_t i = 0; i < c.size(); ++i) {
    const Json& part = c[i];
    const std::string pw = where + "[" + std::to_string(i) + "]";
    if (!part.is_object() || !part.contains("type") || !part["type"].is_string()) return Bad(pw, "'" + pw + "' must be an object with a 'type'");
    if (part["type"] != "text") return Bad(pw, "'" + pw + "': only text parts are supported, not '" + part["type"].get<std::string>() + "'");
    if (!part.contains("text") || !part["text"].is_string()) return Bad(pw + ".text", "'" + pw + ".text' must be a string");
    if (!text.empty()) text += "\n";
    text += part["text"].get<std::string>();
  }
  return text;
}

}  // namespace

Json ApiError::ToJson() const {
  Json e = {{"message", message}, {"type", type}, {"param", param.empty() ? Json(nullptr) : Json(param)}, {"code", code.empty() ? Json(nullptr) : Json(code)}};
  return Json{{"error", e}};
}

std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

std::variant<ApiRequest, ApiError> ParseRequest(const std::string& text, bool chat, int64_t n_vocab) {
  // nlohmann's parser keeps its own stack, but copying a value (a message is copied below, and
  // the chat template converts it again) recurses once per level: a body of a million '[' would
  // overflow the thread's stack. Values nested deeper than any real request are refused.
  constexpr int kMaxNesting = 64;
  int deepest = 0;
  const Json::parser_callback_t depth = [&](int d, Json::parse_event_t, Json&) {
    deepest = std::max(deepest, d);
    return d <= kMaxNesting;  // deeper values are dropped as they are read
  };
  Json body = Json::parse(text, depth, /*allow_exceptions=*/false);
  if (body.is_discarded()) return Bad("", "the request body is not valid JSON");
  if (deepest > kMaxNesting) return Bad("", fmt::format("the request body is nested deeper than {} levels", kMaxNesting));
  if (!body.is_object()) return Bad("", "the request body must be a JSON object, not " + TypeName(body));
  ApiRequest r;
  r.chat = chat;
  if (chat) {
    auto it = body.find("messages");
    if (it == body.end()) return Bad("messages", "'messages' is required");
    if (!it->is_array() || it->empty()) return Bad("messages", "'messages' must be a non-empty array");
    r.messages = Json::array();
    for (size_t i = 0; i < it->size(); ++i) {
      const Json& m = (*it)[i];
      const std::string w = "messages[" + std::to_string(i) + "]";
      if (!m.is_object()) return Bad(w, "'" + w + "' must be an object, not " + TypeName(m));
      if (!m.contains("role") || !m["role"].is_string()) return Bad(w + ".role", "'" + w + ".role' must be a string");
      Json out = m;
      auto content = Content(m.contains("content") ? m["content"] : Json(nullptr), w + ".content");
      if (auto* e = std::get_if<ApiError>(&content)) return *e;
      out["content"] = std::get<std::string>(content);
      r.messages.push_back(std::move(out));
    }
  } else {
    auto it = body.find("prompt");
    if (it == body.end()) return Bad("prompt", "'prompt' is required");
    const Json* p = &*it;
    if (p->is_array() && p->size() == 1 && ((*p)[0].is_string() || (*p)[0].is_array())) p = &(*p)[0];
    if (p->is_string()) {
      r.prompt_text = p->get<std::string>();
    } else if (p->is_array() && !p->empty() && std::all_of(p->begin(), p->end(), [](const Json& x) { return x.is_number_integer(); })) {
      r.prompt_is_tokens = true;
      for (const Json& x : *p) {
        const int64_t id = x.get<int64_t>();
        if (id < 0 || id >= n_vocab) return Bad("prompt", fmt::format("'prompt' token {} is outside the vocabulary of {}", id, n_vocab));
        r.prompt_tokens.push_back(static_cast<int32_t>(id));
      }
    } else {
      return Bad("prompt", "'prompt' must be a string, one string in an array, or an array of token ids");
    }
  }
  if (auto it = body.find("model"); it != body.end() && !it->is_string() && !it->is_null()) return Bad("model", "'model' must be a string");
  if (auto e = Bool(body, "stream", &r.stream)) return *e;
  if (auto it = body.find("stream_options"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) return Bad("stream_options", "'stream_options' must be an object");
    if (auto e = Bool(*it, "include_usage", &r.include_usage)) return *e;
  }
  int64_t n = 1;
  if (auto e = Integer(body, "n", 1, 1, &n)) return ApiError{400, "only n = 1 is supported", "invalid_request_error", "n", ""};
  SamplerParams& sp = r.gen.sampling;
  if (auto e = Number(body, "temperature", 0, 2, &sp.temp)) return *e;
  if (auto e = Number(body, "top_p", 0, 1, &sp.top_p)) return *e;
  if (auto e = Number(body, "min_p", 0, 1, &sp.min_p)) return *e;
  if (auto e = Number(body, "presence_penalty", -2, 2, &sp.presence_penalty)) return *e;
  if (auto e = Number(body, "frequency_penalty", -2, 2, &sp.frequency_penalty)) return *e;
  if (auto e = Number(body, "repeat_penalty", 0.01, 10, &sp.repeat_penalty)) return *e;
  int64_t top_k = sp.top_k, last_n = sp.repeat_last_n, seed = 0;
  if (auto e = Integer(body, "top_k", 0, 1 << 24, &top_k)) return *e;
  if (auto e = Integer(body, "repeat_last_n", 0, 1 << 20, &last_n)) return *e;
  if (auto e = Integer(body, "seed", INT64_MIN, INT64_MAX, &seed, &r.seed_given)) return *e;
  sp.top_k = static_cast<int>(top_k);
  sp.repeat_last_n = static_cast<int>(last_n);
  sp.seed = static_cast<uint64_t>(seed);
  int64_t max_tokens = -1;
  const char* max_key = chat && body.contains("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  if (auto e = Integer(body, max_key, 1, int64_t{1} << 40, &max_tokens)) return *e;
  r.gen.max_tokens = max_tokens;
  if (auto e = Bool(body, "ignore_eos", &r.gen.ignore_eos)) return *e;
  if (auto it = body.find("stop"); it != body.end() && !it->is_null()) {
    if (it->is_string()) {
      r.gen.stop.push_back(it->get<std::string>());
    } else if (it->is_array() && it->size() <= 16 && std::all_of(it->begin(), it->end(), [](const Json& s) { return s.is_string(); })) {
      for (const Json& s : *it) r.gen.stop.push_back(s.get<std::string>());
    } else {
      return Bad("stop", "'stop' must be a string or an array of at most 16 strings");
    }
    for (const std::string& s : r.gen.stop) {
      if (s.size() > 1024) return Bad("stop", "a 'stop' string is longer than 1024 bytes");
    }
  }
  if (chat) {
    if (auto e = Bool(body, "logprobs", &r.logprobs)) return *e;
    int64_t top = 0;
    if (auto e = Integer(body, "top_logprobs", 0, 20, &top)) return *e;
    if (top > 0 && !r.logprobs) return Bad("top_logprobs", "'top_logprobs' needs 'logprobs': true");
    r.top_logprobs = static_cast<int>(top);
  } else {
    int64_t lp = -1;
    if (auto e = Integer(body, "logprobs", 0, 20, &lp)) return *e;
    r.logprobs = lp >= 0;
    r.top_logprobs = static_cast<int>(std::max<int64_t>(lp, 0));
  }
  r.gen.top_logprobs = r.logprobs ? r.top_logprobs : -1;
  return r;
}

Json LogprobsJson(const std::vector<TokenLogprob>& toks, const TokenTextFn& text, bool chat, size_t text_offset) {
  auto bytes = [](const std::string& s) {
    Json b = Json::array();
    for (unsigned char c : s) b.push_back(c);
    return b;
  };
  if (chat) {
    Json content = Json::array();
    for (const TokenLogprob& t : toks) {
      const std::string s = text(t.token);
      Json top = Json::array();
      for (const auto& [id, lp] : t.top) {
        const std::string ts = text(id);
        top.push_back({{"token", ts}, {"logprob", lp}, {"bytes", bytes(ts)}});
      }
      content.push_back({{"token", s}, {"logprob", t.logprob}, {"bytes", bytes(s)}, {"top_logprobs", top}});
    }
    return Json{{"content", content}};
  }
  Json tokens = Json::array(), lps = Json::array(), tops = Json::array(), offsets = Json::array();
  for (const TokenLogprob& t : toks) {
    const std::string s = text(t.token);
    tokens.push_back(s);
    lps.push_back(t.logprob);
    Json top = Json::object();
    for (const auto& [id, lp] : t.top) top[text(id)] = lp;
    tops.push_back(top);
    offsets.push_back(text_offset);
    text_offset += s.size();
  }
  return Json{{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

Json UsageJson(const GenerationEvent& d) {
  Json u{{"prompt_tokens", d.prompt_tokens},
         {"completion_tokens", d.completion_tokens},
         {"total_tokens", d.prompt_tokens + d.completion_tokens},
         {"prompt_tokens_details", {{"cached_tokens", d.cached_tokens}}}};
  // Speculative decoding: OpenAI's fields for predicted-output tokens carry the drafts' counts.
  if (d.speculative) {
    u["completion_tokens_details"] = {{"accepted_prediction_tokens", d.accepted}, {"rejected_prediction_tokens", d.drafted - d.accepted}};
  }
  return u;
}

Json CompletionJson(const ResponseMeta& m, const std::string& text, const GenerationEvent& done, const Json& logprobs) {
  Json choice = m.chat ? Json{{"index", 0}, {"message", {{"role", "assistant"}, {"content", text}}}, {"logprobs", logprobs}, {"finish_reason", done.finish_reason}}
                       : Json{{"index", 0}, {"text", text}, {"logprobs", logprobs}, {"finish_reason", done.finish_reason}};
  return Json{{"id", m.id}, {"object", m.chat ? "chat.completion" : "text_completion"}, {"created", m.created}, {"model", m.model},
              {"system_fingerprint", "lowbit"}, {"choices", Json::array({choice})}, {"usage", UsageJson(done)}};
}

Json ChunkJson(const ResponseMeta& m, const std::optional<std::string>& text, bool role, const std::string* finish, const Json& logprobs) {
  Json choice;
  if (m.chat) {
    Json delta = Json::object();
    if (role) delta["role"] = "assistant";
    if (text) delta["content"] = *text;
    choice = {{"index", 0}, {"delta", delta}, {"logprobs", logprobs}, {"finish_reason", finish ? Json(*finish) : Json(nullptr)}};
  } else {
    choice = {{"index", 0}, {"text", text.value_or("")}, {"logprobs", logprobs}, {"finish_reason", finish ? Json(*finish) : Json(nullptr)}};
  }
  return Json{{"id", m.id}, {"object", m.chat ? "chat.completion.chunk" : "text_completion"}, {"created", m.created}, {"model", m.model},
              {"system_fingerprint", "lowbit"}, {"choices", Json::array({choice})}};
}

Json UsageChunkJson(const ResponseMeta& m, const GenerationEvent& done) {
  return Json{{"id", m.id}, {"object", m.chat ? "chat.completion.chunk" : "text_completion"}, {"created", m.created}, {"model", m.model},
              {"system_fingerprint", "lowbit"}, {"choices", Json::array()}, {"usage", UsageJson(done)}};
}

}  // namespace lowbit::server

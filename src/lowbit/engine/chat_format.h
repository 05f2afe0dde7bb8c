// Chat prompts: a conversation (OpenAI-style messages) rendered with the model's chat template
// (template/), then tokenized with its special tokens parsed. The template comes from the model
// (`tokenizer.chat_template` in the GGUF, or tokenizer_config.json of a folder), a name of the
// well-known templates (template/named_templates.h), or a file (`--chat-template NAME|FILE`).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lowbit/base/status.h"
#include "lowbit/template/template.h"
#include "lowbit/tokenizer/tokenizer.h"
#include "lowbit/tokenizer/vocab.h"

namespace lowbit {

// The template source for `spec`: empty -> the model's (an error when it has none), a name of a
// built-in template, or a path to a file holding one.
Expected<std::string> ResolveChatTemplate(const std::string& spec, const std::string& model_template);

class ChatFormatter {
 public:
  static Expected<ChatFormatter> Create(const std::string& source, const Vocab& vocab);

  // `messages`: [{"role": ..., "content": "..."}, ...]; other fields pass through to the template.
  Expected<std::string> Render(const nlohmann::ordered_json& messages, bool add_generation_prompt) const;
  // Render, then tokenize (special tokens parsed, BOS added when the vocabulary asks and the
  // template did not write it).
  Expected<std::vector<int32_t>> Tokens(const Tokenizer& tok, const nlohmann::ordered_json& messages,
                                        bool add_generation_prompt) const;

 private:
  jinja::Template tpl_;
  std::string bos_, eos_;
};

}  // namespace lowbit

#include <memory>

#include "lowbit/engine/scheduler.h"

namespace lowbit {

// A conversation on a scheduler (for `lowbit chat`): the messages so far, rendered in full at each
// turn; the scheduler's prefix reuse keeps the history's K/V between turns, so a turn reads only
// its new tokens.
class Conversation {
 public:
  Conversation(Scheduler& s, const ChatFormatter& f, const Tokenizer& t, GenerationRequest defaults)
      : sched_(s), fmt_(f), tok_(t), defaults_(std::move(defaults)) {}

  void Reset() { messages_ = nlohmann::ordered_json::array(); }
  void SetSystem(const std::string& text) { system_ = text; }
  // Starts the reply to `user`. Errors: the conversation no longer fits the context (then the
  // message is not kept), or the template refuses it.
  Expected<std::shared_ptr<RequestChannel>> Ask(const std::string& user);
  // Records the reply (complete or stopped) as the assistant's turn.
  void Answered(const std::string& reply);
  size_t turns() const { return messages_.size(); }

 private:
  nlohmann::ordered_json All() const;
  Scheduler& sched_;
  const ChatFormatter& fmt_;
  const Tokenizer& tok_;
  GenerationRequest defaults_;
  std::string system_;
  nlohmann::ordered_json messages_ = nlohmann::ordered_json::array();
};

}  // namespace lowbit

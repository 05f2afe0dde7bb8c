#include "lowbit/engine/chat_format.h"

#include <fstream>
#include <sstream>

#include "lowbit/template/named_templates.h"

namespace lowbit {

Expected<std::string> ResolveChatTemplate(const std::string& spec, const std::string& model_template) {
  if (spec.empty()) {
    if (model_template.empty()) {
      return Errorf("the model has no chat template (tokenizer.chat_template); pass --chat-template NAME or FILE (names: {})", [] {
        std::string names;
        for (const auto& t : jinja::NamedTemplates()) names += (names.empty() ? "" : ", ") + std::string(t.name);
        return names;
      }());
    }
    return model_template;
  }
  if (const jinja::NamedTemplate* t = jinja::FindNamedTemplate(spec)) return std::string(t->source);
  std::ifstream in(spec, std::ios::binary);
  if (!in) return Errorf("--chat-template {}: neither a built-in template name nor a readable file", spec);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (ss.str().size() > (1u << 20)) return Errorf("{}: a chat template larger than 1 MiB", spec);
  return ss.str();
}

Expected<ChatFormatter> ChatFormatter::Create(const std::string& source, const Vocab& vocab) {
  ChatFormatter f;
  auto tpl = jinja::Template::Parse(source);
  if (!tpl.ok()) return Errorf("chat template: {}", tpl.status().message());
  f.tpl_ = std::move(*tpl);
  auto text = [&](int64_t id) { return id >= 0 && static_cast<size_t>(id) < vocab.tokens.size() ? vocab.tokens[id] : std::string(); };
  f.bos_ = text(vocab.bos_id);
  f.eos_ = text(vocab.eos_id);
  return f;
}

Expected<std::string> ChatFormatter::Render(const nlohmann::ordered_json& messages, bool add_generation_prompt) const {
  nlohmann::ordered_json ctx = {{"messages", messages}, {"bos_token", bos_}, {"eos_token", eos_}, {"add_generation_prompt", add_generation_prompt}};
  auto out = tpl_.Render(jinja::Value::FromJson(ctx));
  if (!out.ok()) return Errorf("chat template: {}", out.status().message());
  return out;
}

Expected<std::vector<int32_t>> ChatFormatter::Tokens(const Tokenizer& tok, const nlohmann::ordered_json& messages,
                                                     bool add_generation_prompt) const {
  LOWBIT_ASSIGN_OR_RETURN(std::string prompt, Render(messages, add_generation_prompt));
  return tok.EncodeSpecial(prompt);
}

}  // namespace lowbit

namespace lowbit {

nlohmann::ordered_json Conversation::All() const {
  nlohmann::ordered_json all = nlohmann::ordered_json::array();
  if (!system_.empty()) all.push_back({{"role", "system"}, {"content", system_}});
  for (const auto& m : messages_) all.push_back(m);
  return all;
}

Expected<std::shared_ptr<RequestChannel>> Conversation::Ask(const std::string& user) {
  messages_.push_back({{"role", "user"}, {"content", user}});
  auto toks = fmt_.Tokens(tok_, All(), true);
  if (!toks.ok()) {
    messages_.erase(messages_.end() - 1);
    return toks.status();
  }
  if (static_cast<int64_t>(toks->size()) >= sched_.n_ctx()) {
    messages_.erase(messages_.end() - 1);
    return Errorf("the conversation has {} tokens, the context holds {}: /reset to start again", toks->size(), sched_.n_ctx());
  }
  GenerationRequest r = defaults_;
  r.prompt = std::move(*toks);
  if (r.max_tokens >= 0) r.max_tokens = std::min<int64_t>(r.max_tokens, sched_.n_ctx() - static_cast<int64_t>(r.prompt.size()));
  auto ch = sched_.Submit(std::move(r));
  if (!ch.ok()) messages_.erase(messages_.end() - 1);
  return ch;
}

void Conversation::Answered(const std::string& reply) { messages_.push_back({{"role", "assistant"}, {"content", reply}}); }

}  // namespace lowbit

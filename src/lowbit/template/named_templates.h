// The chat templates of well-known model families, by name (`--chat-template NAME`), as their
// tokenizer_config.json publishes them (generated: scripts/gen_chat_templates.py).
#pragma once

#include <string>
#include <vector>

namespace lowbit::jinja {

struct NamedTemplate {
  const char* name;    // llama2, llama3, chatml, ...
  const char* model;   // the model whose tokenizer_config.json holds it
  const char* source;  // the template
};

const std::vector<NamedTemplate>& NamedTemplates();
// nullptr when no template has this name.
inline const NamedTemplate* FindNamedTemplate(const std::string& name) {
  for (const NamedTemplate& t : NamedTemplates()) {
    if (name == t.name) return &t;
  }
  return nullptr;
}

}  // namespace lowbit::jinja

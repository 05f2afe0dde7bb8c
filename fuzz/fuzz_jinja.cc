// libFuzzer target: the chat-template engine (template/). Any input is parsed and, if it parses,
// rendered with a small conversation under tight limits: a value or an error, never a crash, a hang
// or an unbounded allocation.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "lowbit/template/template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto t = lowbit::jinja::Template::Parse(text);
  if (!t.ok()) return 0;
  static const lowbit::jinja::Value ctx = lowbit::jinja::Value::FromJson(nlohmann::ordered_json{
      {"messages", {{{"role", "system"}, {"content", "S"}}, {{"role", "user"}, {"content", "Hi"}}, {{"role", "assistant"}, {"content", "Yo"}}}},
      {"bos_token", "<s>"}, {"eos_token", "</s>"}, {"add_generation_prompt", true}});
  (void)t->Render(ctx, lowbit::jinja::Limits{.max_steps = 200000, .max_output = 1 << 20, .max_depth = 100});
  return 0;
}

// `lowbit template`: render a chat template with a conversation, to see the exact prompt a model
// gets. `--list` prints the built-in templates; `--batch` renders JSON lines
// {"template": SOURCE, "context": {...}} into JSON lines {"output": ...} or {"error": ...}.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "lowbit/engine/chat_format.h"
#include "lowbit/formats/gguf_reader.h"
#include "lowbit/template/named_templates.h"

namespace lowbit::tools {
namespace {

using Json = nlohmann::ordered_json;

Expected<std::string> RenderWith(const std::string& source, const Json& ctx) {
  auto t = jinja::Template::Parse(source);
  if (!t.ok()) return t.status();
  return t->Render(jinja::Value::FromJson(ctx));
}

}  // namespace

void AddTemplate(CLI::App& app, Registry& r) {
  struct Args {
    std::string model, chat_template;
    bool list = false, batch = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand("template", "Render a chat template with a conversation read as JSON from stdin");
  sub->add_option("-m,--model", a->model, "GGUF model whose tokenizer.chat_template to use");
  sub->add_option("--chat-template", a->chat_template, "a built-in name (llama2, llama3, chatml, ...) or a file");
  sub->add_flag("--list", a->list, "print the built-in templates as JSON");
  sub->add_flag("--batch", a->batch, "render JSON lines {\"template\", \"context\"} from stdin");
  r.Add(sub, [a]() -> Status {
    if (a->list) {
      Json out = Json::object();
      for (const jinja::NamedTemplate& t : jinja::NamedTemplates()) out[t.name] = {{"model", t.model}, {"source", t.source}};
      std::printf("%s\n", out.dump(2).c_str());
      return OkStatus();
    }
    if (a->batch) {
      std::string line;
      while (std::getline(std::cin, line)) {
        Json in = Json::parse(line, nullptr, false);
        Json out;
        if (in.is_discarded() || !in.is_object() || !in.contains("template") || !in["template"].is_string()) {
          out = {{"error", "each line must be {\"template\": string, \"context\": object}"}};
        } else {
          auto rendered = RenderWith(in["template"].get<std::string>(), in.value("context", Json::object()));
          out = rendered.ok() ? Json{{"output", *rendered}} : Json{{"error", rendered.status().message()}};
        }
        std::printf("%s\n", out.dump(-1, ' ', false, Json::error_handler_t::replace).c_str());
        std::fflush(stdout);
      }
      return OkStatus();
    }
    std::string model_template;
    if (!a->model.empty()) {
      LOWBIT_ASSIGN_OR_RETURN(GgufFile g, GgufFile::Open(a->model));
      if (g.Find("tokenizer.chat_template") != nullptr) {
        LOWBIT_ASSIGN_OR_RETURN(model_template, g.GetString("tokenizer.chat_template"));
      }
    }
    LOWBIT_ASSIGN_OR_RETURN(std::string source, ResolveChatTemplate(a->chat_template, model_template));
    const std::string input(std::istreambuf_iterator<char>(std::cin), {});
    Json ctx = Json::parse(input, nullptr, false);
    if (ctx.is_discarded() || !ctx.is_object()) return Errorf("stdin: expected a JSON object such as {{\"messages\": [...], \"add_generation_prompt\": true}}");
    LOWBIT_ASSIGN_OR_RETURN(std::string out, RenderWith(source, ctx));
    std::fwrite(out.data(), 1, out.size(), stdout);
    return OkStatus();
  });
}

}  // namespace lowbit::tools

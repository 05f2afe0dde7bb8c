// A Jinja engine for chat templates: the subset that real `tokenizer.chat_template` strings use,
// rendered as Hugging Face transformers renders them (Jinja2 with trim_blocks and lstrip_blocks,
// the loopcontrols extension, and the `raise_exception`, `strftime_now` and `tojson` helpers).
//
// Supported: text with {{ expressions }}, {% statements %} and {# comments #}, whitespace control
// ({%- -%}, {{- -}}, {%+); if/elif/else, for (with a filter `if`, `else`, tuple unpacking, `loop.*`,
// break/continue), set (names, `ns.attr`, tuples, block set), macro and calls of macros, and
// `generation` blocks (rendered as their body). Expressions: literals (strings, ints, floats,
// true/false/none, lists, dicts, tuples), names, attributes, indexing and slicing, calls,
// `not and or`, comparisons, `in`/`not in`, arithmetic (+ - * / // % **), `~`, `x if c else y`,
// filters and `is` tests; the string, list and dict methods templates call (strip, split,
// startswith, items, get, append, ...). Globals: range, namespace, raise_exception, strftime_now,
// dict. Not supported (an error, never a silent wrong render): call blocks, filter blocks,
// include/extends/import, raw, recursive loops.
//
// Rendering is bounded (steps, output size, nesting), so a hostile template or message ends with
// an error rather than a hang. Errors name the template line.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "lowbit/base/status.h"
#include "lowbit/template/value.h"

namespace lowbit::jinja {

struct Node;

struct Limits {
  int64_t max_steps = 5'000'000;        // expression and statement evaluations (a few seconds)
  size_t max_output = 64u << 20;        // bytes
  int max_depth = 200;                  // nesting of expressions, statements and macro calls
};

class Template {
 public:
  // Parses `source` (trim_blocks and lstrip_blocks on, a single trailing newline dropped, as
  // transformers configures Jinja2).
  static Expected<Template> Parse(std::string_view source);

  // Renders with the variables of `context` (an object) as globals beside the built-ins.
  Expected<std::string> Render(const Value& context, const Limits& limits = {}) const;

 private:
  std::shared_ptr<const Node> root_;
};

}  // namespace lowbit::jinja

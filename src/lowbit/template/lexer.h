// Template lexer (internal to template/): splits a template into text and the tokens of its tags,
// applying Jinja2's whitespace control with trim_blocks and lstrip_blocks.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "lowbit/base/status.h"

namespace lowbit::jinja {

enum class Tok {
  kText,       // text between tags
  kExprBegin,  // {{
  kExprEnd,    // }}
  kStmtBegin,  // {%
  kStmtEnd,    // %}
  kName,
  kString,     // the literal's value, escapes resolved
  kInt,
  kFloat,
  kOp,         // punctuation and operators: == != <= >= // ** < > + - * / % ~ | . , : ( ) [ ] { } =
  kEnd,        // end of the template
};

struct Token {
  Tok kind;
  std::string text;
  int line;
};

Expected<std::vector<Token>> Lex(std::string_view source);

}  // namespace lowbit::jinja

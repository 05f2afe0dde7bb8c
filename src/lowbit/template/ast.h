// The parsed form of a template (internal to template/): one Node type for statements and
// expressions, a kind and its children.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "lowbit/template/value.h"

namespace lowbit::jinja {

enum class NodeKind {
  // statements
  kBody,      // kids: statements in order
  kText,      // str
  kOutput,    // kids[0]: expression
  kIf,        // kids: cond0, body0, cond1, body1, ..., [else body] (odd count: last is else)
  kFor,       // names: targets; kids: iterable, body, filter (or null), else body (or null)
  kSet,       // kids[0]: target (kName, kAttr, or kTuple of names), kids[1]: value
  kSetBlock,  // str: name; kids[0]: body
  kMacro,     // str: name; names: parameters; kids[0]: body, kids[1..]: defaults (null when none)
  kBreak,
  kContinue,
  // expressions
  kLiteral,   // value
  kName,      // str
  kAttr,      // kids[0]: object; str: attribute
  kIndex,     // kids[0]: object, kids[1]: index
  kSlice,     // kids[0]: object, kids[1..3]: start, stop, step (null when absent)
  kCall,      // kids[0]: callee, kids[1..]: positional args; names + kwargs: keyword args
  kFilter,    // str: name; kids[0]: input, kids[1..]: args; names + kwargs
  kTest,      // str: name; negated; kids[0]: input, kids[1..]: args
  kUnary,     // str: "-", "+", "not"
  kBinary,    // str: operator; kids[0], kids[1]
  kAnd,
  kOr,
  kTernary,   // kids: value, cond, else value (null when absent)
  kList,      // kids: items
  kTuple,     // kids: items
  kDict,      // kids: key0, value0, key1, value1, ...
};

struct Node {
  NodeKind kind;
  int line = 0;
  std::string str;
  Value value;
  bool negated = false;
  std::vector<std::string> names;
  std::vector<std::shared_ptr<Node>> kids;
  std::vector<std::shared_ptr<Node>> kwargs;
};

using NodePtr = std::shared_ptr<Node>;

// Parses a template into a kBody node (parser.cc).
Expected<NodePtr> ParseTemplate(std::string_view source);

}  // namespace lowbit::jinja

// Recursive-descent parser for the Jinja subset, with Jinja2's operator precedence (lowest first):
// `x if c else y`, or, and, not, comparisons and `in`, + -, ~, * / // %, **, unary - +, then a
// primary with its postfix (.attr, [index], [a:b:c], (call)) and its filters and tests.
#include <cstdlib>

#include "lowbit/template/ast.h"
#include "lowbit/template/lexer.h"

namespace lowbit::jinja {
namespace {

constexpr int kMaxNesting = 200;

class Parser {
 public:
  explicit Parser(std::vector<Token> t) : t_(std::move(t)) {}

  Expected<NodePtr> ParseAll() {
    std::string end;
    LOWBIT_ASSIGN_OR_RETURN(NodePtr body, ParseBody({}, &end));
    if (Peek().kind != Tok::kEnd) return Error("unexpected '{% " + end + " %}'");
    return body;
  }

 private:
  const Token& Peek(size_t ahead = 0) const { return t_[std::min(i_ + ahead, t_.size() - 1)]; }
  const Token& Next() { return t_[std::min(i_++, t_.size() - 1)]; }
  bool IsOp(const char* op, size_t ahead = 0) const { return Peek(ahead).kind == Tok::kOp && Peek(ahead).text == op; }
  bool IsName(const char* name, size_t ahead = 0) const { return Peek(ahead).kind == Tok::kName && Peek(ahead).text == name; }
  Status Error(const std::string& what) const { return Errorf("template line {}: {}", Peek().line, what); }
  Status Expect(const char* op) {
    if (!IsOp(op)) return Error(std::string("expected '") + op + "'" + Found());
    ++i_;
    return OkStatus();
  }
  std::string Found() const {
    const Token& t = Peek();
    switch (t.kind) {
      case Tok::kEnd: return " at the end of the template";
      case Tok::kExprEnd: return ", found '}}'";
      case Tok::kStmtEnd: return ", found '%}'";
      case Tok::kText: return ", found text";
      default: return ", found '" + t.text + "'";
    }
  }
  Status ExpectStmtEnd() {
    if (Peek().kind != Tok::kStmtEnd) return Error("expected '%}'" + Found());
    ++i_;
    return OkStatus();
  }
  Expected<std::string> ExpectName() {
    if (Peek().kind != Tok::kName) return Error("expected a name" + Found());
    return Next().text;
  }
  NodePtr Make(NodeKind k) {
    auto n = std::make_shared<Node>();
    n->kind = k;
    n->line = Peek().line;
    return n;
  }
  Status Deeper() {
    if (++depth_ > kMaxNesting) return Error("nesting deeper than " + std::to_string(kMaxNesting));
    return OkStatus();
  }

  // Statements until one of `ends` (its keyword is consumed and returned in *end; the rest of that
  // tag is left for the caller) or the end of the template (when `ends` is empty).
  Expected<NodePtr> ParseBody(std::initializer_list<const char*> ends, std::string* end) {
    LOWBIT_RETURN_IF_ERROR(Deeper());
    NodePtr body = Make(NodeKind::kBody);
    while (true) {
      const Token& t = Peek();
      if (t.kind == Tok::kEnd) {
        if (ends.size() == 0) break;
        return Error(std::string("missing '{% ") + *(ends.end() - 1) + " %}'");
      }
      if (t.kind == Tok::kText) {
        NodePtr n = Make(NodeKind::kText);
        n->str = Next().text;
        body->kids.push_back(n);
      } else if (t.kind == Tok::kExprBegin) {
        ++i_;
        NodePtr n = Make(NodeKind::kOutput);
        LOWBIT_ASSIGN_OR_RETURN(NodePtr e, ParseExpr());
        n->kids.push_back(e);
        if (Peek().kind != Tok::kExprEnd) return Error("expected '}}'" + Found());
        ++i_;
        body->kids.push_back(n);
      } else if (t.kind == Tok::kStmtBegin) {
        if (Peek(1).kind != Tok::kName) return Error("expected a statement after '{%'");
        const std::string& kw = Peek(1).text;
        for (const char* e : ends) {
          if (kw == e) {
            i_ += 2;
            *end = kw;
            --depth_;
            return body;
          }
        }
        i_ += 2;
        LOWBIT_ASSIGN_OR_RETURN(NodePtr s, ParseStatement(kw));
        if (s) body->kids.push_back(s);
      } else {
        return Error("unexpected token" + Found());
      }
    }
    --depth_;
    return body;
  }

  Expected<NodePtr> ParseStatement(const std::string& kw) {
    if (kw == "if") return ParseIf();
    if (kw == "for") return ParseFor();
    if (kw == "set") return ParseSet();
    if (kw == "macro") return ParseMacro();
    if (kw == "break" || kw == "continue") {
      NodePtr n = Make(kw == "break" ? NodeKind::kBreak : NodeKind::kContinue);
      LOWBIT_RETURN_IF_ERROR(ExpectStmtEnd());
      return n;
    }
    if (kw == "generation") {  // transformers' assistant-mask marker: rendered as its body
      LOWBIT_RETURN_IF_ERROR(ExpectStmtEnd());
      std::string end;
      LOWBIT_ASSIGN_OR_RETURN(NodePtr body, ParseBody({"endgeneration"}, &end));
      LOWBIT_RETURN_IF_ERROR(ExpectStmtEnd());
      return body;
    }
    return Error("unsupported statement '" + kw + "'");
  }

  Expected<NodePtr> ParseIf() {
    NodePtr n = Make(NodeKind::kIf);
    while (true) {
      LOWBIT_ASSIGN_OR_RETURN(NodePtr cond, ParseExpr());
      LOWBIT_RETURN_IF_ERROR(ExpectStmtEnd());
      std::string end;
      LOWBIT_ASSIGN_OR_RETURN(NodePtr body, ParseBody({"elif", "else", "endif"}, &end));
      n->kids.push_back(cond);
      n->kids.push_back(body);
      if (end == "elif") continue;
      if (end == "else") {
        LOWBIT_RETURN_IF_ERROR(ExpectStmtEnd());
        LOWBIT_ASSIGN_OR_RETURN(NodePtr else_body, ParseBody({"endif"}, &end));
        n->kids.push_back(else_body);
      }
      LOWBIT_RETURN_IF_ERROR(ExpectStmtEnd());
      return n;
    }
  }

  Expected<NodePtr> ParseFor() {
    NodePtr n = Make(NodeKind::kFor);
    do {
      LOWBIT_ASSIGN_OR_RETURN(std::string name, ExpectName());
      n->names.push_back(name);
    } while (IsOp(",") && (++i_, true));
    if (!IsName("in")) return Error("expected 'in'" + Found());
    ++i_;
    LOWBIT_ASSIGN_OR_RETURN(NodePtr iter, ParseOr());
    NodePtr filter;
    if (IsName("if")) {
      ++i_;
      LOWBIT_ASSIGN_OR_RETURN(filter, ParseOr());
    }
    if (IsName("recursive")) return Error("recursive loops are not supported");
    LOWBIT_RETURN_IF_ERROR(ExpectStmtEnd());
    std::string end;
    LOWBIT_ASSIGN_OR_RETURN(NodePtr body, ParseBody({"else", "endfor"}, &end));
    NodePtr else_body;
    if (end == "else") {
      LOWBIT_RETURN_IF_ERROR(ExpectStmtEnd());
      LOWBIT_ASSIGN_OR_RETURN(else_body, ParseBody({"endfor"}, &end));
    }
    LOWBIT_RETURN_IF_ERROR(ExpectStmtEnd());
    n->kids = {iter, body, filter, else_body};
    return n;
  }

  Expected<NodePtr> ParseSet() {
    LOWBIT_ASSIGN_OR_RETURN(std::string name, ExpectName());
    if (Peek().kind == Tok::kStmtEnd) {  // block set
      ++i_;
      NodePtr n = Make(NodeKind::kSetBlock);
      n->str = name;
      std::string end;
      LOWBIT_ASSIGN_OR_RETURN(NodePtr body, ParseBody({"endset"}, &end));
      LOWBIT_RETURN_IF_ERROR(ExpectStmtEnd());
      n->kids.push_back(body);
      return n;
    }
    NodePtr target = Make(NodeKind::kName);
    target->str = name;
    if (IsOp(".")) {
      ++i_;
      NodePtr attr = Make(NodeKind::kAttr);
      LOWBIT_ASSIGN_OR_RETURN(attr->str, ExpectName());
      attr->kids.push_back(target);
      target = attr;
    } else if (IsOp(",")) {
      NodePtr tuple = Make(NodeKind::kTuple);
      tuple->kids.push_back(target);
      while (IsOp(",")) {
        ++i_;
        NodePtr more = Make(NodeKind::kName);
        LOWBIT_ASSIGN_OR_RETURN(more->str, ExpectName());
        tuple->kids.push_back(more);
      }
      target = tuple;
    }
    LOWBIT_RETURN_IF_ERROR(Expect("="));
    NodePtr n = Make(NodeKind::kSet);
    LOWBIT_ASSIGN_OR_RETURN(NodePtr value, ParseTupleOrExpr());
    LOWBIT_RETURN_IF_ERROR(ExpectStmtEnd());
    n->kids = {target, value};
    return n;
  }

  Expected<NodePtr> ParseMacro() {
    NodePtr n = Make(NodeKind::kMacro);
    LOWBIT_ASSIGN_OR_RETURN(n->str, ExpectName());
    LOWBIT_RETURN_IF_ERROR(Expect("("));
    std::vector<NodePtr> defaults;
    while (!IsOp(")")) {
      LOWBIT_ASSIGN_OR_RETURN(std::string p, ExpectName());
      n->names.push_back(p);
      NodePtr def;
      if (IsOp("=")) {
        ++i_;
        LOWBIT_ASSIGN_OR_RETURN(def, ParseExpr());
      }
      defaults.push_back(def);
      if (!IsOp(",")) break;
      ++i_;
    }
    LOWBIT_RETURN_IF_ERROR(Expect(")"));
    LOWBIT_RETURN_IF_ERROR(ExpectStmtEnd());
    std::string end;
    LOWBIT_ASSIGN_OR_RETURN(NodePtr body, ParseBody({"endmacro"}, &end));
    LOWBIT_RETURN_IF_ERROR(ExpectStmtEnd());
    n->kids.push_back(body);
    for (auto& d : defaults) n->kids.push_back(d);
    return n;
  }

  // `a, b` (a tuple) or one expression.
  Expected<NodePtr> ParseTupleOrExpr() {
    LOWBIT_ASSIGN_OR_RETURN(NodePtr first, ParseExpr());
    if (!IsOp(",")) return first;
    NodePtr t = Make(NodeKind::kTuple);
    t->kids.push_back(first);
    while (IsOp(",")) {
      ++i_;
      if (Peek().kind == Tok::kStmtEnd) break;
      LOWBIT_ASSIGN_OR_RETURN(NodePtr e, ParseExpr());
      t->kids.push_back(e);
    }
    return t;
  }

  Expected<NodePtr> ParseExpr() {
    LOWBIT_RETURN_IF_ERROR(Deeper());
    LOWBIT_ASSIGN_OR_RETURN(NodePtr value, ParseOr());
    while (IsName("if")) {
      ++i_;
      NodePtr n = Make(NodeKind::kTernary);
      LOWBIT_ASSIGN_OR_RETURN(NodePtr cond, ParseOr());
      NodePtr other;
      if (IsName("else")) {
        ++i_;
        LOWBIT_ASSIGN_OR_RETURN(other, ParseExpr());
      }
      n->kids = {value, cond, other};
      value = n;
    }
    --depth_;
    return value;
  }

  Expected<NodePtr> ParseOr() {
    LOWBIT_ASSIGN_OR_RETURN(NodePtr left, ParseAnd());
    while (IsName("or")) {
      ++i_;
      NodePtr n = Make(NodeKind::kOr);
      LOWBIT_ASSIGN_OR_RETURN(NodePtr right, ParseAnd());
      n->kids = {left, right};
      left = n;
    }
    return left;
  }

  Expected<NodePtr> ParseAnd() {
    LOWBIT_ASSIGN_OR_RETURN(NodePtr left, ParseNot());
    while (IsName("and")) {
      ++i_;
      NodePtr n = Make(NodeKind::kAnd);
      LOWBIT_ASSIGN_OR_RETURN(NodePtr right, ParseNot());
      n->kids = {left, right};
      left = n;
    }
    return left;
  }

  Expected<NodePtr> ParseNot() {
    if (IsName("not")) {
      LOWBIT_RETURN_IF_ERROR(Deeper());
      ++i_;
      NodePtr n = Make(NodeKind::kUnary);
      n->str = "not";
      LOWBIT_ASSIGN_OR_RETURN(NodePtr e, ParseNot());
      n->kids.push_back(e);
      --depth_;
      return n;
    }
    return ParseCompare();
  }

  Expected<NodePtr> ParseCompare() {
    LOWBIT_ASSIGN_OR_RETURN(NodePtr left, ParseMath1());
    while (true) {
      std::string op;
      if (Peek().kind == Tok::kOp && (Peek().text == "==" || Peek().text == "!=" || Peek().text == "<" || Peek().text == ">" ||
                                      Peek().text == "<=" || Peek().text == ">=")) {
        op = Next().text;
      } else if (IsName("in")) {
        ++i_;
        op = "in";
      } else if (IsName("not") && IsName("in", 1)) {
        i_ += 2;
        op = "not in";
      } else {
        return left;
      }
      NodePtr n = Make(NodeKind::kBinary);
      n->str = op;
      LOWBIT_ASSIGN_OR_RETURN(NodePtr right, ParseMath1());
      n->kids = {left, right};
      left = n;
    }
  }

  Expected<NodePtr> ParseBinaryLevel(std::initializer_list<const char*> ops, Expected<NodePtr> (Parser::*next)()) {
    LOWBIT_ASSIGN_OR_RETURN(NodePtr left, (this->*next)());
    while (true) {
      const char* hit = nullptr;
      for (const char* op : ops) {
        if (IsOp(op)) hit = op;
      }
      if (hit == nullptr) return left;
      ++i_;
      NodePtr n = Make(NodeKind::kBinary);
      n->str = hit;
      LOWBIT_ASSIGN_OR_RETURN(NodePtr right, (this->*next)());
      n->kids = {left, right};
      left = n;
    }
  }
  Expected<NodePtr> ParseMath1() { return ParseBinaryLevel({"+", "-"}, &Parser::ParseConcat); }
  Expected<NodePtr> ParseConcat() { return ParseBinaryLevel({"~"}, &Parser::ParseMath2); }
  Expected<NodePtr> ParseMath2() { return ParseBinaryLevel({"*", "/", "//", "%"}, &Parser::ParsePow); }
  Expected<NodePtr> ParsePow() { return ParseBinaryLevel({"**"}, &Parser::ParseUnaryFiltered); }
  Expected<NodePtr> ParseUnaryFiltered() { return ParseUnary(true); }

  Expected<NodePtr> ParseUnary(bool with_filter) {
    LOWBIT_RETURN_IF_ERROR(Deeper());
    NodePtr node;
    if (IsOp("-") || IsOp("+")) {
      node = Make(NodeKind::kUnary);
      node->str = Next().text;
      LOWBIT_ASSIGN_OR_RETURN(NodePtr e, ParseUnary(false));
      node->kids.push_back(e);
    } else {
      LOWBIT_ASSIGN_OR_RETURN(node, ParsePrimary());
      LOWBIT_ASSIGN_OR_RETURN(node, ParsePostfix(node));
    }
    if (with_filter) {
      LOWBIT_ASSIGN_OR_RETURN(node, ParseFilters(node));
    }
    --depth_;
    return node;
  }

  Expected<NodePtr> ParsePrimary() {
    const Token& t = Peek();
    NodePtr n = Make(NodeKind::kLiteral);
    switch (t.kind) {
      case Tok::kString: {
        std::string s = Next().text;
        while (Peek().kind == Tok::kString) s += Next().text;  // adjacent literals concatenate
        n->value = Value(std::move(s));
        return n;
      }
      case Tok::kInt: {
        errno = 0;
        const long long v = std::strtoll(Next().text.c_str(), nullptr, 10);
        if (errno == ERANGE) return Error("integer literal out of range");
        n->value = Value(static_cast<int64_t>(v));
        return n;
      }
      case Tok::kFloat: n->value = Value(std::strtod(Next().text.c_str(), nullptr)); return n;
      case Tok::kName: {
        const std::string& name = t.text;
        if (name == "true" || name == "True") n->value = Value(true);
        else if (name == "false" || name == "False") n->value = Value(false);
        else if (name == "none" || name == "None") n->value = Value::None();
        else {
          n->kind = NodeKind::kName;
          n->str = name;
        }
        ++i_;
        return n;
      }
      case Tok::kOp: break;
      default: return Error("expected an expression" + Found());
    }
    if (IsOp("(")) {
      ++i_;
      if (IsOp(")")) {  // empty tuple
        ++i_;
        n->kind = NodeKind::kTuple;
        return n;
      }
      LOWBIT_ASSIGN_OR_RETURN(NodePtr e, ParseExpr());
      if (IsOp(",")) {
        NodePtr tuple = Make(NodeKind::kTuple);
        tuple->kids.push_back(e);
        while (IsOp(",")) {
          ++i_;
          if (IsOp(")")) break;
          LOWBIT_ASSIGN_OR_RETURN(NodePtr more, ParseExpr());
          tuple->kids.push_back(more);
        }
        e = tuple;
      }
      LOWBIT_RETURN_IF_ERROR(Expect(")"));
      return e;
    }
    if (IsOp("[")) {
      ++i_;
      n->kind = NodeKind::kList;
      while (!IsOp("]")) {
        LOWBIT_ASSIGN_OR_RETURN(NodePtr e, ParseExpr());
        n->kids.push_back(e);
        if (!IsOp(",")) break;
        ++i_;
      }
      LOWBIT_RETURN_IF_ERROR(Expect("]"));
      return n;
    }
    if (IsOp("{")) {
      ++i_;
      n->kind = NodeKind::kDict;
      while (!IsOp("}")) {
        LOWBIT_ASSIGN_OR_RETURN(NodePtr k, ParseExpr());
        LOWBIT_RETURN_IF_ERROR(Expect(":"));
        LOWBIT_ASSIGN_OR_RETURN(NodePtr v, ParseExpr());
        n->kids.push_back(k);
        n->kids.push_back(v);
        if (!IsOp(",")) break;
        ++i_;
      }
      LOWBIT_RETURN_IF_ERROR(Expect("}"));
      return n;
    }
    return Error("expected an expression" + Found());
  }

  // Arguments after '(' up to ')': positional into n->kids (after what it holds), keyword into
  // n->names / n->kwargs.
  Status ParseArgs(const NodePtr& n) {
    LOWBIT_RETURN_IF_ERROR(Expect("("));
    while (!IsOp(")")) {
      if (Peek().kind == Tok::kName && IsOp("=", 1)) {
        n->names.push_back(Next().text);
        ++i_;
        LOWBIT_ASSIGN_OR_RETURN(NodePtr v, ParseExpr());
        n->kwargs.push_back(v);
      } else {
        if (!n->names.empty()) return Error("positional argument after a keyword argument");
        LOWBIT_ASSIGN_OR_RETURN(NodePtr v, ParseExpr());
        n->kids.push_back(v);
      }
      if (!IsOp(",")) break;
      ++i_;
    }
    return Expect(")");
  }

  Expected<NodePtr> ParsePostfix(NodePtr node) {
    while (true) {
      if (IsOp(".")) {
        ++i_;
        NodePtr n = Make(NodeKind::kAttr);
        if (Peek().kind == Tok::kInt) {  // a.0 is a[0]
          n->kind = NodeKind::kIndex;
          NodePtr idx = Make(NodeKind::kLiteral);
          idx->value = Value(static_cast<int64_t>(std::strtoll(Next().text.c_str(), nullptr, 10)));
          n->kids = {node, idx};
        } else {
          LOWBIT_ASSIGN_OR_RETURN(n->str, ExpectName());
          n->kids.push_back(node);
        }
        node = n;
      } else if (IsOp("[")) {
        ++i_;
        NodePtr parts[3];
        bool slice = false;
        for (int k = 0; k < 3; ++k) {
          if (!IsOp(":") && !IsOp("]")) {
            LOWBIT_ASSIGN_OR_RETURN(parts[k], ParseExpr());
          }
          if (IsOp(":") && k < 2) {
            ++i_;
            slice = true;
            continue;
          }
          break;
        }
        LOWBIT_RETURN_IF_ERROR(Expect("]"));
        NodePtr n = Make(slice ? NodeKind::kSlice : NodeKind::kIndex);
        if (!slice && parts[0] == nullptr) return Error("empty index");
        n->kids = slice ? std::vector<NodePtr>{node, parts[0], parts[1], parts[2]} : std::vector<NodePtr>{node, parts[0]};
        node = n;
      } else if (IsOp("(")) {
        NodePtr n = Make(NodeKind::kCall);
        n->kids.push_back(node);
        LOWBIT_RETURN_IF_ERROR(ParseArgs(n));
        node = n;
      } else {
        return node;
      }
    }
  }

  Expected<NodePtr> ParseFilters(NodePtr node) {
    while (true) {
      if (IsOp("|")) {
        ++i_;
        NodePtr n = Make(NodeKind::kFilter);
        LOWBIT_ASSIGN_OR_RETURN(n->str, ExpectName());
        n->kids.push_back(node);
        if (IsOp("(")) LOWBIT_RETURN_IF_ERROR(ParseArgs(n));
        node = n;
      } else if (IsName("is")) {
        ++i_;
        NodePtr n = Make(NodeKind::kTest);
        if (IsName("not")) {
          ++i_;
          n->negated = true;
        }
        LOWBIT_ASSIGN_OR_RETURN(n->str, ExpectName());
        n->kids.push_back(node);
        if (IsOp("(")) {
          LOWBIT_RETURN_IF_ERROR(ParseArgs(n));
        } else if (Peek().kind == Tok::kString || Peek().kind == Tok::kInt || Peek().kind == Tok::kFloat ||
                   (Peek().kind == Tok::kName && !IsName("and") && !IsName("or") && !IsName("else") && !IsName("if") &&
                    !IsName("is") && !IsName("in") && !IsName("not"))) {
          LOWBIT_ASSIGN_OR_RETURN(NodePtr arg, ParseUnary(false));
          n->kids.push_back(arg);
        }
        node = n;
      } else {
        return node;
      }
    }
  }

  std::vector<Token> t_;
  size_t i_ = 0;
  int depth_ = 0;
};

}  // namespace

Expected<NodePtr> ParseTemplate(std::string_view source) {
  LOWBIT_ASSIGN_OR_RETURN(std::vector<Token> tokens, Lex(source));
  return Parser(std::move(tokens)).ParseAll();
}

}  // namespace lowbit::jinja

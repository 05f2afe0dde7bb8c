// Rendering a parsed template: statements write text, expressions evaluate to Values, with
// Jinja2's scoping (a for loop's body has its own scope, `set` inside it does not leak out; a
// namespace object is how templates carry state out of loops) and bounded work.
#include <cmath>

#include "lowbit/template/ast.h"
#include "lowbit/template/builtins.h"
#include "lowbit/template/template.h"

namespace lowbit::jinja {
namespace {

struct Scope {
  Object vars;
  std::shared_ptr<Scope> parent;
  const Value* Find(std::string_view name) const {
    for (const Scope* s = this; s != nullptr; s = s->parent.get()) {
      for (const auto& [k, v] : s->vars) {
        if (k == name) return &v;
      }
    }
    return nullptr;
  }
  void Set(const std::string& name, Value v) {
    for (auto& [k, old] : vars) {
      if (k == name) {
        old = std::move(v);
        return;
      }
    }
    vars.emplace_back(name, std::move(v));
  }
};
using ScopePtr = std::shared_ptr<Scope>;

enum class Flow { kNormal, kBreak, kContinue };

class Renderer {
 public:
  explicit Renderer(const Limits& l) : lim_(l) {}

  Status Exec(const Node& n, const ScopePtr& scope, std::string* out, Flow* flow) {
    LOWBIT_RETURN_IF_ERROR(Step(n));
    switch (n.kind) {
      case NodeKind::kBody:
        for (const NodePtr& k : n.kids) {
          LOWBIT_RETURN_IF_ERROR(Exec(*k, scope, out, flow));
          if (*flow != Flow::kNormal) break;
        }
        break;
      case NodeKind::kText: out->append(n.str); break;
      case NodeKind::kOutput: {
        LOWBIT_ASSIGN_OR_RETURN(Value v, Eval(*n.kids[0], scope));
        out->append(v.ToString());
        break;
      }
      case NodeKind::kIf: {
        size_t i = 0;
        for (; i + 1 < n.kids.size(); i += 2) {
          LOWBIT_ASSIGN_OR_RETURN(Value c, Eval(*n.kids[i], scope));
          if (c.Truthy()) return Exec(*n.kids[i + 1], scope, out, flow);
        }
        if (i < n.kids.size()) return Exec(*n.kids[i], scope, out, flow);
        break;
      }
      case NodeKind::kFor: LOWBIT_RETURN_IF_ERROR(ExecFor(n, scope, out)); break;
      case NodeKind::kSet: LOWBIT_RETURN_IF_ERROR(ExecSet(n, scope)); break;
      case NodeKind::kSetBlock: {
        std::string text;
        Flow f = Flow::kNormal;
        LOWBIT_RETURN_IF_ERROR(Exec(*n.kids[0], scope, &text, &f));
        scope->Set(n.str, Value(std::move(text)));
        break;
      }
      case NodeKind::kMacro: scope->Set(n.str, MakeMacro(n, scope)); break;
      case NodeKind::kBreak: *flow = Flow::kBreak; break;
      case NodeKind::kContinue: *flow = Flow::kContinue; break;
      default: return Fail(n, "not a statement");
    }
    if (out->size() > lim_.max_output) return Fail(n, "output larger than " + std::to_string(lim_.max_output) + " bytes");
    return OkStatus();
  }

  Expected<Value> Eval(const Node& n, const ScopePtr& scope) {
    LOWBIT_RETURN_IF_ERROR(Step(n));
    if (++depth_ > lim_.max_depth) return Fail(n, "nesting deeper than " + std::to_string(lim_.max_depth));
    Expected<Value> v = EvalInner(n, scope);
    --depth_;
    // Bounded values, not only bounded output: `s ~ s` or `l + l` in a loop doubles per step.
    if (v.ok() && v->is_string() && v->str().size() > lim_.max_output) return Fail(n, "a string longer than " + std::to_string(lim_.max_output) + " bytes");
    if (v.ok() && v->is_array() && v->array().size() > kMaxListLength) return Fail(n, "a list longer than " + std::to_string(kMaxListLength) + " items");
    return v;
  }

 private:
  Status Step(const Node& n) {
    if (++steps_ > lim_.max_steps) return Fail(n, "more than " + std::to_string(lim_.max_steps) + " steps (a runaway loop?)");
    return OkStatus();
  }
  static Status Fail(const Node& n, const std::string& what) { return Errorf("template line {}: {}", n.line, what); }
  static Status At(const Node& n, const Status& s) {
    if (s.message().rfind("template line", 0) == 0) return s;
    return Errorf("template line {}: {}", n.line, s.message());
  }

  Expected<Value> EvalInner(const Node& n, const ScopePtr& scope) {
    switch (n.kind) {
      case NodeKind::kLiteral: return n.value;
      case NodeKind::kName: {
        const Value* v = scope->Find(n.str);
        return v != nullptr ? *v : Value();
      }
      case NodeKind::kAttr: {
        LOWBIT_ASSIGN_OR_RETURN(Value obj, Eval(*n.kids[0], scope));
        return GetItem(obj, Value(n.str));
      }
      case NodeKind::kIndex: {
        LOWBIT_ASSIGN_OR_RETURN(Value obj, Eval(*n.kids[0], scope));
        LOWBIT_ASSIGN_OR_RETURN(Value key, Eval(*n.kids[1], scope));
        return GetItem(obj, key);
      }
      case NodeKind::kSlice: return EvalSlice(n, scope);
      case NodeKind::kCall: return EvalCall(n, scope);
      case NodeKind::kFilter: {
        LOWBIT_ASSIGN_OR_RETURN(Value in, Eval(*n.kids[0], scope));
        LOWBIT_ASSIGN_OR_RETURN(CallArgs args, EvalArgs(n, 1, scope));
        Expected<Value> r = ApplyFilter(n.str, in, args);
        if (!r.ok()) return At(n, r.status());
        return r;
      }
      case NodeKind::kTest: {
        LOWBIT_ASSIGN_OR_RETURN(Value in, Eval(*n.kids[0], scope));
        LOWBIT_ASSIGN_OR_RETURN(CallArgs args, EvalArgs(n, 1, scope));
        Expected<bool> r = ApplyTest(n.str, in, args);
        if (!r.ok()) return At(n, r.status());
        return Value(*r != n.negated);
      }
      case NodeKind::kUnary: {
        LOWBIT_ASSIGN_OR_RETURN(Value v, Eval(*n.kids[0], scope));
        if (n.str == "not") return Value(!v.Truthy());
        if (!v.is_number() && v.kind() != Value::Kind::kBool) return Fail(n, std::string("bad operand for unary ") + n.str + ": " + KindName(v.kind()));
        if (n.str == "+") return v;
        if (v.kind() == Value::Kind::kFloat) return Value(-v.as_double());
        return Value(WrapSub(0, v.as_int()));
      }
      case NodeKind::kAnd: {
        LOWBIT_ASSIGN_OR_RETURN(Value a, Eval(*n.kids[0], scope));
        if (!a.Truthy()) return a;
        return Eval(*n.kids[1], scope);
      }
      case NodeKind::kOr: {
        LOWBIT_ASSIGN_OR_RETURN(Value a, Eval(*n.kids[0], scope));
        if (a.Truthy()) return a;
        return Eval(*n.kids[1], scope);
      }
      case NodeKind::kTernary: {
        LOWBIT_ASSIGN_OR_RETURN(Value c, Eval(*n.kids[1], scope));
        if (c.Truthy()) return Eval(*n.kids[0], scope);
        if (n.kids[2] == nullptr) return Value();
        return Eval(*n.kids[2], scope);
      }
      case NodeKind::kBinary: return EvalBinary(n, scope);
      case NodeKind::kList:
      case NodeKind::kTuple: {
        Array a;
        for (const NodePtr& k : n.kids) {
          LOWBIT_ASSIGN_OR_RETURN(Value v, Eval(*k, scope));
          a.push_back(std::move(v));
        }
        return Value(std::move(a));
      }
      case NodeKind::kDict: {
        Value d{Object{}};
        for (size_t i = 0; i + 1 < n.kids.size(); i += 2) {
          LOWBIT_ASSIGN_OR_RETURN(Value k, Eval(*n.kids[i], scope));
          LOWBIT_ASSIGN_OR_RETURN(Value v, Eval(*n.kids[i + 1], scope));
          if (!k.is_string()) return Fail(n, "dict keys must be strings");
          d.Set(k.str(), std::move(v));
        }
        return d;
      }
      default: return Fail(n, "not an expression");
    }
  }

  Expected<CallArgs> EvalArgs(const Node& n, size_t first, const ScopePtr& scope) {
    CallArgs a;
    for (size_t i = first; i < n.kids.size(); ++i) {
      LOWBIT_ASSIGN_OR_RETURN(Value v, Eval(*n.kids[i], scope));
      a.args.push_back(std::move(v));
    }
    for (size_t i = 0; i < n.kwargs.size(); ++i) {
      LOWBIT_ASSIGN_OR_RETURN(Value v, Eval(*n.kwargs[i], scope));
      a.kwargs.emplace_back(n.names[i], std::move(v));
    }
    return a;
  }

  Expected<Value> EvalCall(const Node& n, const ScopePtr& scope) {
    const Node& callee = *n.kids[0];
    LOWBIT_ASSIGN_OR_RETURN(CallArgs args, EvalArgs(n, 1, scope));
    if (callee.kind == NodeKind::kAttr) {
      LOWBIT_ASSIGN_OR_RETURN(Value obj, Eval(*callee.kids[0], scope));
      if (IsMethodName(obj, callee.str)) {
        std::optional<Expected<Value>> r = CallMethod(obj, callee.str, args);
        if (r.has_value()) {
          if (!r->ok()) return At(n, r->status());
          return std::move(*r);
        }
      }
    }
    LOWBIT_ASSIGN_OR_RETURN(Value f, Eval(callee, scope));
    if (!f.is_function()) {
      const std::string name = callee.kind == NodeKind::kName || callee.kind == NodeKind::kAttr ? "'" + callee.str + "' " : "";
      return Fail(n, name + "is not callable (" + KindName(f.kind()) + ")");
    }
    Expected<Value> r = f.function()(args);
    if (!r.ok()) return At(n, r.status());
    return r;
  }

  Value MakeMacro(const Node& n, const ScopePtr& scope) {
    const Node* def = &n;
    // The macro lives in the scope it captures: a weak reference, or the pair would never be freed.
    std::weak_ptr<Scope> weak = scope;
    return Value::Func([this, def, weak](CallArgs& args) -> Expected<Value> {
      ScopePtr home = weak.lock();
      if (home == nullptr) return Fail(*def, "macro '" + def->str + "' called outside the scope that defined it");
      auto local = std::make_shared<Scope>();
      local->parent = home;
      const size_t np = def->names.size();
      if (args.args.size() > np) return Fail(*def, "macro '" + def->str + "' takes " + std::to_string(np) + " arguments");
      for (size_t i = 0; i < np; ++i) {
        Value v;
        if (i < args.args.size()) v = args.args[i];
        else if (const Value* kw = args.Kw(def->names[i])) v = *kw;
        else if (def->kids[i + 1] != nullptr) {
          LOWBIT_ASSIGN_OR_RETURN(v, Eval(*def->kids[i + 1], home));
        }
        local->Set(def->names[i], std::move(v));
      }
      if (++depth_ > lim_.max_depth) return Fail(*def, "macro calls nested deeper than " + std::to_string(lim_.max_depth));
      std::string text;
      Flow f = Flow::kNormal;
      Status s = Exec(*def->kids[0], local, &text, &f);
      --depth_;
      LOWBIT_RETURN_IF_ERROR(s);
      return Value(std::move(text));
    });
  }

  Status ExecFor(const Node& n, const ScopePtr& scope, std::string* out) {
    LOWBIT_ASSIGN_OR_RETURN(Value iter, Eval(*n.kids[0], scope));
    Array items;
    if (iter.is_array()) items = iter.array();
    else if (iter.is_object()) {
      for (const auto& kv : iter.object()) items.emplace_back(kv.first);
    } else if (iter.is_string()) {
      for (char c : iter.str()) items.emplace_back(std::string(1, c));
    } else if (iter.is_undefined() || iter.is_none()) {
      // Jinja2 iterates an undefined as empty; none is an error there, treated as empty here too.
    } else {
      return Fail(n, std::string(KindName(iter.kind())) + " is not iterable");
    }
    auto body_scope = std::make_shared<Scope>();
    body_scope->parent = scope;
    auto bind = [&](const Value& item) -> Status {
      if (n.names.size() == 1) {
        body_scope->Set(n.names[0], item);
        return OkStatus();
      }
      if (!item.is_array() || item.array().size() != n.names.size()) {
        return Fail(n, "cannot unpack " + std::string(KindName(item.kind())) + " into " + std::to_string(n.names.size()) + " names");
      }
      for (size_t i = 0; i < n.names.size(); ++i) body_scope->Set(n.names[i], item.array()[i]);
      return OkStatus();
    };
    if (n.kids[2] != nullptr) {  // the loop's filter runs before loop.* are counted
      Array kept;
      for (const Value& item : items) {
        LOWBIT_RETURN_IF_ERROR(bind(item));
        LOWBIT_ASSIGN_OR_RETURN(Value keep, Eval(*n.kids[2], body_scope));
        if (keep.Truthy()) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      if (n.kids[3] == nullptr) return OkStatus();
      Flow f = Flow::kNormal;
      return Exec(*n.kids[3], scope, out, &f);
    }
    const auto len = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < len; ++i) {
      body_scope->vars.clear();
      LOWBIT_RETURN_IF_ERROR(bind(items[i]));
      Value loop{Object{}};
      loop.Set("index", Value(i + 1));
      loop.Set("index0", Value(i));
      loop.Set("revindex", Value(len - i));
      loop.Set("revindex0", Value(len - i - 1));
      loop.Set("first", Value(i == 0));
      loop.Set("last", Value(i == len - 1));
      loop.Set("length", Value(len));
      loop.Set("previtem", i > 0 ? items[i - 1] : Value());
      loop.Set("nextitem", i + 1 < len ? items[i + 1] : Value());
      loop.Set("cycle", Value::Func([i](CallArgs& a) -> Expected<Value> {
                 if (a.args.empty()) return Errorf("loop.cycle needs at least one argument");
                 return a.args[static_cast<size_t>(i) % a.args.size()];
               }));
      body_scope->Set("loop", loop);
      Flow f = Flow::kNormal;
      LOWBIT_RETURN_IF_ERROR(Exec(*n.kids[1], body_scope, out, &f));
      if (f == Flow::kBreak) break;
    }
    return OkStatus();
  }

  Status ExecSet(const Node& n, const ScopePtr& scope) {
    LOWBIT_ASSIGN_OR_RETURN(Value v, Eval(*n.kids[1], scope));
    const Node& target = *n.kids[0];
    if (target.kind == NodeKind::kName) {
      scope->Set(target.str, std::move(v));
    } else if (target.kind == NodeKind::kAttr) {
      const Value* obj = scope->Find(target.kids[0]->str);
      if (obj == nullptr || !obj->is_object()) return Fail(n, "cannot set '" + target.str + "' on '" + target.kids[0]->str + "': not a namespace");
      if (v.Reaches(*obj)) return Fail(n, "cannot set '" + target.str + "' on '" + target.kids[0]->str + "': a namespace cannot contain itself");
      obj->Set(target.str, std::move(v));
    } else {  // tuple of names
      if (!v.is_array() || v.array().size() != target.kids.size()) return Fail(n, "cannot unpack into " + std::to_string(target.kids.size()) + " names");
      for (size_t i = 0; i < target.kids.size(); ++i) scope->Set(target.kids[i]->str, v.array()[i]);
    }
    return OkStatus();
  }

  Expected<Value> EvalSlice(const Node& n, const ScopePtr& scope) {
    LOWBIT_ASSIGN_OR_RETURN(Value obj, Eval(*n.kids[0], scope));
    int64_t part[3] = {0, 0, 1};
    bool given[3] = {false, false, false};
    for (int k = 0; k < 3; ++k) {
      if (n.kids[k + 1] == nullptr) continue;
      LOWBIT_ASSIGN_OR_RETURN(Value v, Eval(*n.kids[k + 1], scope));
      if (v.is_none()) continue;
      if (v.kind() != Value::Kind::kInt) return Fail(n, "slice indices must be integers");
      part[k] = v.as_int();
      given[k] = true;
    }
    const int64_t step = part[2];
    if (step == 0) return Fail(n, "slice step cannot be zero");
    int64_t len;
    if (obj.is_array()) len = static_cast<int64_t>(obj.array().size());
    else if (obj.is_string()) len = static_cast<int64_t>(obj.str().size());
    else return Fail(n, std::string("cannot slice ") + KindName(obj.kind()));
    // Python's slice.indices().
    auto clamp = [&](int64_t v, bool has, int64_t def_pos, int64_t def_neg) {
      if (!has) return step > 0 ? def_pos : def_neg;
      if (v < 0) v += len;
      if (step > 0) return std::clamp<int64_t>(v, 0, len);
      return std::clamp<int64_t>(v, -1, len - 1);
    };
    const int64_t start = clamp(part[0], given[0], 0, len - 1), stop = clamp(part[1], given[1], len, -1);
    Array a;
    std::string s;
    // start and stop lie in [-1, len]; the loop ends before i + step could leave int64.
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      if (obj.is_array()) a.push_back(obj.array()[static_cast<size_t>(i)]);
      else s += obj.str()[static_cast<size_t>(i)];
      if (step > 0 ? stop - i <= step : stop - i >= step) break;
    }
    if (obj.is_array()) return Value(std::move(a));
    return Value(std::move(s));
  }

  Expected<Value> EvalBinary(const Node& n, const ScopePtr& scope) {
    LOWBIT_ASSIGN_OR_RETURN(Value a, Eval(*n.kids[0], scope));
    LOWBIT_ASSIGN_OR_RETURN(Value b, Eval(*n.kids[1], scope));
    const std::string& op = n.str;
    if (op == "==") return Value(a.Equals(b));
    if (op == "!=") return Value(!a.Equals(b));
    if (op == "~") return Value(a.ToString() + b.ToString());
    if (op == "in" || op == "not in") {
      bool found = false;
      if (b.is_string()) {
        if (!a.is_string()) return Fail(n, "'in <string>' needs a string on the left");
        found = b.str().find(a.str()) != std::string::npos;
      } else if (b.is_array()) {
        for (const Value& e : b.array()) found = found || e.Equals(a);
      } else if (b.is_object()) {
        found = a.is_string() && !b.Get(a.str()).is_undefined();
      } else if (!b.is_undefined()) {
        return Fail(n, std::string("argument of type ") + KindName(b.kind()) + " is not iterable");
      }
      return Value(op == "in" ? found : !found);
    }
    if (op == "<" || op == ">" || op == "<=" || op == ">=") {
      int cmp;
      if (a.is_string() && b.is_string()) cmp = a.str().compare(b.str());
      else if ((a.is_number() || a.kind() == Value::Kind::kBool) && (b.is_number() || b.kind() == Value::Kind::kBool)) {
        cmp = a.as_double() < b.as_double() ? -1 : a.as_double() > b.as_double() ? 1 : 0;
      } else {
        return Fail(n, "cannot compare " + std::string(KindName(a.kind())) + " and " + KindName(b.kind()) + " with " + op);
      }
      if (op == "<") return Value(cmp < 0);
      if (op == ">") return Value(cmp > 0);
      if (op == "<=") return Value(cmp <= 0);
      return Value(cmp >= 0);
    }
    if (op == "+" && a.is_string() && b.is_string()) return Value(a.str() + b.str());
    if (op == "+" && a.is_array() && b.is_array()) {
      Array r = a.array();
      r.insert(r.end(), b.array().begin(), b.array().end());
      return Value(std::move(r));
    }
    if (op == "*" && a.is_string() && b.kind() == Value::Kind::kInt) {
      if (b.as_int() > 0 && !a.str().empty() && static_cast<uint64_t>(b.as_int()) > lim_.max_output / a.str().size()) return Fail(n, "string repetition too large");
      std::string r;
      for (int64_t i = 0; i < b.as_int(); ++i) r += a.str();
      return Value(std::move(r));
    }
    const bool nums = (a.is_number() || a.kind() == Value::Kind::kBool) && (b.is_number() || b.kind() == Value::Kind::kBool);
    if (!nums) {
      return Fail(n, "unsupported operand types for " + op + ": " + KindName(a.kind()) + " and " + KindName(b.kind()));
    }
    const bool ints = a.kind() != Value::Kind::kFloat && b.kind() != Value::Kind::kFloat;
    const int64_t x = a.as_int(), y = b.as_int();
    const double fx = a.as_double(), fy = b.as_double();
    if (op == "+") return ints ? Value(WrapAdd(x, y)) : Value(fx + fy);
    if (op == "-") return ints ? Value(WrapSub(x, y)) : Value(fx - fy);
    if (op == "*") return ints ? Value(WrapMul(x, y)) : Value(fx * fy);
    if (op == "/") {
      if (fy == 0) return Fail(n, "division by zero");
      return Value(fx / fy);
    }
    if (op == "//" || op == "%") {
      if (ints) {
        if (y == 0) return Fail(n, "integer division or modulo by zero");
        if (x == INT64_MIN && y == -1) return Fail(n, "integer overflow");
        int64_t q = x / y, r = x % y;
        if (r != 0 && ((r < 0) != (y < 0))) {
          --q;
          r += y;
        }
        return op == "//" ? Value(q) : Value(r);
      }
      if (fy == 0) return Fail(n, "float division or modulo by zero");
      const double q = std::floor(fx / fy);
      return op == "//" ? Value(q) : Value(fx - q * fy);
    }
    if (op == "**") {
      if (ints && y >= 0) {
        int64_t r = 1;
        for (int64_t i = 0; i < y && i < 64; ++i) r = WrapMul(r, x);
        return Value(r);
      }
      return Value(std::pow(fx, fy));
    }
    return Fail(n, "unknown operator " + op);
  }

  Limits lim_;
  int64_t steps_ = 0;
  int depth_ = 0;
};

}  // namespace

Expected<Template> Template::Parse(std::string_view source) {
  LOWBIT_ASSIGN_OR_RETURN(NodePtr root, ParseTemplate(source));
  Template t;
  t.root_ = std::move(root);
  return t;
}

Expected<std::string> Template::Render(const Value& context, const Limits& limits) const {
  auto globals = std::make_shared<Scope>();
  globals->vars = Globals().object();
  auto top = std::make_shared<Scope>();
  top->parent = globals;
  if (context.is_object()) {
    // A copy: what the template appends or sets stays in this render (the caller may render the
    // same context again, and a macro stored into it must not outlive this render).
    for (const auto& [k, v] : context.object()) top->Set(k, v.DeepCopy());
  }
  Renderer r(limits);
  std::string out;
  Flow f = Flow::kNormal;
  LOWBIT_RETURN_IF_ERROR(r.Exec(*root_, top, &out, &f));
  return out;
}

}  // namespace lowbit::jinja

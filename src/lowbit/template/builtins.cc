#include "lowbit/template/builtins.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <ctime>

namespace lowbit::jinja {
namespace {

bool IsWs(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string Strip(const std::string& s, const std::string* chars, bool left, bool right) {
  auto drop = [&](char c) { return chars != nullptr ? chars->find(c) != std::string::npos : IsWs(c); };
  size_t b = 0, e = s.size();
  if (left) {
    while (b < e && drop(s[b])) ++b;
  }
  if (right) {
    while (e > b && drop(s[e - 1])) --e;
  }
  return s.substr(b, e - b);
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}
std::string Title(std::string s) {
  bool start = true;
  for (char& c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalpha(u)) {
      c = static_cast<char>(start ? std::toupper(u) : std::tolower(u));
      start = false;
    } else {
      start = true;
    }
  }
  return s;
}
std::string Capitalize(std::string s) {
  s = Lower(std::move(s));
  if (!s.empty()) s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
  return s;
}
std::string Replace(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  if (from.empty()) return s;
  std::string out;
  size_t pos = 0;
  for (int64_t n = 0; count < 0 || n < count; ++n) {
    const size_t at = s.find(from, pos);
    if (at == std::string::npos) break;
    out.append(s, pos, at - pos);
    out += to;
    pos = at + from.size();
  }
  out.append(s, pos);
  return out;
}

Expected<Value> Arg(const CallArgs& a, size_t i, const char* name, const char* fn) {
  if (i < a.args.size()) return a.args[i];
  if (const Value* v = a.Kw(name)) return *v;
  return Errorf("{}: missing argument '{}'", fn, name);
}
Value ArgOr(const CallArgs& a, size_t i, const char* name, Value def) {
  if (i < a.args.size()) return a.args[i];
  if (const Value* v = a.Kw(name)) return *v;
  return def;
}

Expected<int64_t> Length(const Value& v) {
  if (v.is_string()) {
    int64_t n = 0;  // characters, not bytes (Python's len)
    for (char c : v.str()) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    return n;
  }
  if (v.is_array()) return static_cast<int64_t>(v.array().size());
  if (v.is_object()) return static_cast<int64_t>(v.object().size());
  if (v.is_undefined()) return 0;
  return Errorf("object of type {} has no length", KindName(v.kind()));
}

Array ToList(const Value& v) {
  if (v.is_array()) return v.array();
  Array a;
  if (v.is_object()) {
    for (const auto& kv : v.object()) a.emplace_back(kv.first);
  } else if (v.is_string()) {
    for (char c : v.str()) a.emplace_back(std::string(1, c));
  }
  return a;
}

// Attribute path "a.b" of v.
Value Attribute(const Value& v, const std::string& path) {
  Value cur = v;
  size_t pos = 0;
  while (true) {
    const size_t dot = path.find('.', pos);
    cur = GetItem(cur, Value(path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos)));
    if (dot == std::string::npos) return cur;
    pos = dot + 1;
  }
}

// selectattr / rejectattr / select / reject.
Expected<Value> Select(const Value& in, const CallArgs& a, bool by_attr, bool keep_if) {
  const char* fn = by_attr ? (keep_if ? "selectattr" : "rejectattr") : (keep_if ? "select" : "reject");
  size_t next = 0;
  std::string attr;
  if (by_attr) {
    if (a.args.empty() || !a.args[0].is_string()) return Errorf("{}: needs an attribute name", fn);
    attr = a.args[0].str();
    next = 1;
  }
  std::string test;
  if (next < a.args.size()) {
    if (!a.args[next].is_string()) return Errorf("{}: the test name must be a string", fn);
    test = a.args[next].str();
  }
  CallArgs test_args;
  for (size_t i = next + 1; i < a.args.size(); ++i) test_args.args.push_back(a.args[i]);
  Array out;
  for (const Value& item : ToList(in)) {
    const Value v = by_attr ? Attribute(item, attr) : item;
    bool ok;
    if (test.empty()) {
      ok = v.Truthy();
    } else {
      LOWBIT_ASSIGN_OR_RETURN(ok, ApplyTest(test, v, test_args));
    }
    if (ok == keep_if) out.push_back(item);
  }
  return Value(std::move(out));
}

int CompareForSort(const Value& a, const Value& b, bool case_sensitive) {
  if (a.is_string() && b.is_string()) {
    const std::string x = case_sensitive ? a.str() : Lower(a.str()), y = case_sensitive ? b.str() : Lower(b.str());
    return x.compare(y);
  }
  if (a.is_number() && b.is_number()) return a.as_double() < b.as_double() ? -1 : a.as_double() > b.as_double() ? 1 : 0;
  return static_cast<int>(a.kind()) - static_cast<int>(b.kind());
}

Expected<std::string> Indent(const std::string& s, const CallArgs& a) {
  const Value w = ArgOr(a, 0, "width", Value(int64_t{4}));
  const bool first = ArgOr(a, 1, "first", Value(false)).Truthy();
  const bool blank = ArgOr(a, 2, "blank", Value(false)).Truthy();
  const std::string pad = w.is_string() ? w.str() : std::string(static_cast<size_t>(std::clamp<int64_t>(w.as_int(), 0, 1024)), ' ');
  std::string out;
  size_t pos = 0;
  bool first_line = true;
  while (pos <= s.size()) {
    const size_t nl = s.find('\n', pos);
    const std::string line = s.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    const bool pad_it = (first_line ? first : true) && (blank || !line.empty());
    if (pad_it) out += pad;
    out += line;
    if (nl == std::string::npos) break;
    out += '\n';
    pos = nl + 1;
    first_line = false;
  }
  return out;
}

}  // namespace

Value GetItem(const Value& obj, const Value& key) {
  if (obj.is_object()) return key.is_string() ? obj.Get(key.str()) : Value();
  if (obj.is_array() || obj.is_string()) {
    if (key.kind() != Value::Kind::kInt && key.kind() != Value::Kind::kBool) return Value();
    const int64_t n = obj.is_array() ? static_cast<int64_t>(obj.array().size()) : static_cast<int64_t>(obj.str().size());
    int64_t i = key.as_int();
    if (i < 0) i += n;
    if (i < 0 || i >= n) return Value();
    if (obj.is_array()) return obj.array()[static_cast<size_t>(i)];
    return Value(std::string(1, obj.str()[static_cast<size_t>(i)]));
  }
  return Value();
}

Expected<Value> ApplyFilter(const std::string& name, const Value& in, const CallArgs& a) {
  if (name == "trim" || name == "strip") {
    const Value chars = ArgOr(a, 0, "chars", Value());
    return Value(Strip(in.ToString(), chars.is_string() ? &chars.str() : nullptr, true, true));
  }
  if (name == "length" || name == "count") {
    LOWBIT_ASSIGN_OR_RETURN(int64_t n, Length(in));
    return Value(n);
  }
  if (name == "upper") return Value(Upper(in.ToString()));
  if (name == "lower") return Value(Lower(in.ToString()));
  if (name == "title") return Value(Title(in.ToString()));
  if (name == "capitalize") return Value(Capitalize(in.ToString()));
  if (name == "string") return Value(in.ToString());
  if (name == "safe" || name == "e" || name == "escape") return in;  // no autoescape in chat templates
  if (name == "tojson") {
    const Value indent = ArgOr(a, 0, "indent", Value());
    LOWBIT_ASSIGN_OR_RETURN(std::string s, in.ToJson(indent.is_number() ? static_cast<int>(std::clamp<int64_t>(indent.as_int(), 0, 64)) : -1));
    return Value(std::move(s));
  }
  if (name == "default" || name == "d") {
    const Value def = ArgOr(a, 0, "default_value", Value(""));
    const bool boolean = ArgOr(a, 1, "boolean", Value(false)).Truthy();
    if (in.is_undefined() || (boolean && !in.Truthy())) return def;
    return in;
  }
  if (name == "list") return Value(ToList(in));
  if (name == "first" || name == "last") {
    const Array l = ToList(in);
    if (l.empty()) return Value();
    return name == "first" ? l.front() : l.back();
  }
  if (name == "reverse") {
    if (in.is_string()) return Value(std::string(in.str().rbegin(), in.str().rend()));
    Array l = ToList(in);
    std::reverse(l.begin(), l.end());
    return Value(std::move(l));
  }
  if (name == "join") {
    const Value sep = ArgOr(a, 0, "d", Value(""));
    const Value attr = ArgOr(a, 1, "attribute", Value());
    std::string out;
    bool first = true;
    for (const Value& e : ToList(in)) {
      if (!first) out += sep.ToString();
      first = false;
      out += (attr.is_string() ? Attribute(e, attr.str()) : e).ToString();
    }
    return Value(std::move(out));
  }
  if (name == "replace") {
    LOWBIT_ASSIGN_OR_RETURN(Value from, Arg(a, 0, "old", "replace"));
    LOWBIT_ASSIGN_OR_RETURN(Value to, Arg(a, 1, "new", "replace"));
    const Value count = ArgOr(a, 2, "count", Value(int64_t{-1}));
    return Value(Replace(in.ToString(), from.ToString(), to.ToString(), count.is_number() ? count.as_int() : -1));
  }
  if (name == "items") {
    if (in.is_undefined()) return Value(Array{});
    if (!in.is_object()) return Errorf("items: {} is not a dict", KindName(in.kind()));
    Array out;
    for (const auto& [k, v] : in.object()) out.push_back(Value(Array{Value(k), v}));
    return Value(std::move(out));
  }
  if (name == "dictsort") {
    if (!in.is_object()) return Errorf("dictsort: {} is not a dict", KindName(in.kind()));
    Array out;
    for (const auto& [k, v] : in.object()) out.push_back(Value(Array{Value(k), v}));
    std::stable_sort(out.begin(), out.end(), [](const Value& x, const Value& y) { return CompareForSort(x.array()[0], y.array()[0], false) < 0; });
    return Value(std::move(out));
  }
  if (name == "sort") {
    Array l = ToList(in);
    const bool rev = ArgOr(a, 0, "reverse", Value(false)).Truthy();
    const bool cs = ArgOr(a, 1, "case_sensitive", Value(false)).Truthy();
    const Value attr = ArgOr(a, 2, "attribute", Value());
    std::stable_sort(l.begin(), l.end(), [&](const Value& x, const Value& y) {
      const Value xa = attr.is_string() ? Attribute(x, attr.str()) : x, ya = attr.is_string() ? Attribute(y, attr.str()) : y;
      const int c = CompareForSort(xa, ya, cs);
      return rev ? c > 0 : c < 0;
    });
    return Value(std::move(l));
  }
  if (name == "unique") {
    Array out;
    for (const Value& e : ToList(in)) {
      if (std::none_of(out.begin(), out.end(), [&](const Value& o) { return o.Equals(e); })) out.push_back(e);
    }
    return Value(std::move(out));
  }
  if (name == "selectattr") return Select(in, a, true, true);
  if (name == "rejectattr") return Select(in, a, true, false);
  if (name == "select") return Select(in, a, false, true);
  if (name == "reject") return Select(in, a, false, false);
  if (name == "map") {
    Array out;
    const Value attr = ArgOr(a, 99, "attribute", Value());
    if (attr.is_string()) {
      const Value def = ArgOr(a, 99, "default", Value());
      for (const Value& e : ToList(in)) {
        Value v = Attribute(e, attr.str());
        out.push_back(v.is_undefined() ? def : v);
      }
      return Value(std::move(out));
    }
    if (a.args.empty() || !a.args[0].is_string()) return Errorf("map: needs a filter name or attribute=");
    CallArgs rest;
    rest.args.assign(a.args.begin() + 1, a.args.end());
    rest.kwargs = a.kwargs;
    for (const Value& e : ToList(in)) {
      LOWBIT_ASSIGN_OR_RETURN(Value v, ApplyFilter(a.args[0].str(), e, rest));
      out.push_back(std::move(v));
    }
    return Value(std::move(out));
  }
  if (name == "int") {
    if (in.is_number() || in.kind() == Value::Kind::kBool) return Value(in.as_int());
    if (in.is_string()) {
      char* end = nullptr;
      const std::string s = Strip(in.str(), nullptr, true, true);
      const long long v = std::strtoll(s.c_str(), &end, 10);
      if (!s.empty() && end != nullptr && *end == '\0') return Value(static_cast<int64_t>(v));
    }
    return ArgOr(a, 0, "default", Value(int64_t{0}));
  }
  if (name == "float") {
    if (in.is_number() || in.kind() == Value::Kind::kBool) return Value(in.as_double());
    if (in.is_string()) {
      char* end = nullptr;
      const std::string s = Strip(in.str(), nullptr, true, true);
      const double v = std::strtod(s.c_str(), &end);
      if (!s.empty() && end != nullptr && *end == '\0') return Value(v);
    }
    return ArgOr(a, 0, "default", Value(0.0));
  }
  if (name == "abs") {
    if (in.kind() == Value::Kind::kInt) return Value(in.as_int() < 0 ? WrapSub(0, in.as_int()) : in.as_int());
    if (in.is_number()) return Value(std::fabs(in.as_double()));
    return Errorf("abs: {} is not a number", KindName(in.kind()));
  }
  if (name == "round") {
    if (!in.is_number()) return Errorf("round: {} is not a number", KindName(in.kind()));
    const int64_t prec = std::clamp<int64_t>(ArgOr(a, 0, "precision", Value(int64_t{0})).as_int(), 0, 15);
    const double m = std::pow(10.0, static_cast<double>(prec));
    return Value(std::round(in.as_double() * m) / m);
  }
  if (name == "indent") {
    LOWBIT_ASSIGN_OR_RETURN(std::string s, Indent(in.ToString(), a));
    return Value(std::move(s));
  }
  if (name == "wordcount") {
    int64_t n = 0;
    bool in_word = false;
    for (char c : in.ToString()) {
      const bool w = !IsWs(c);
      n += w && !in_word;
      in_word = w;
    }
    return Value(n);
  }
  if (name == "sum") {
    Value total(int64_t{0});
    for (const Value& e : ToList(in)) {
      if (!e.is_number()) return Errorf("sum: {} is not a number", KindName(e.kind()));
      total = total.kind() == Value::Kind::kInt && e.kind() == Value::Kind::kInt ? Value(WrapAdd(total.as_int(), e.as_int()))
                                                                                 : Value(total.as_double() + e.as_double());
    }
    return total;
  }
  return Errorf("unknown filter '{}'", name);
}

Expected<bool> ApplyTest(const std::string& name, const Value& v, const CallArgs& a) {
  using K = Value::Kind;
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.kind() == K::kInt;
  if (name == "float") return v.kind() == K::kFloat;
  if (name == "boolean") return v.kind() == K::kBool;
  if (name == "true") return v.kind() == K::kBool && v.as_bool();
  if (name == "false") return v.kind() == K::kBool && !v.as_bool();
  if (name == "mapping") return v.is_object();
  if (name == "sequence") return v.is_array() || v.is_string() || v.is_object();
  if (name == "iterable") return v.is_array() || v.is_string() || v.is_object();
  if (name == "callable") return v.is_function();
  if (name == "lower") return v.is_string() && Lower(v.str()) == v.str();
  if (name == "upper") return v.is_string() && Upper(v.str()) == v.str();
  if (name == "odd" || name == "even") {
    if (v.kind() != K::kInt) return Errorf("test '{}': {} is not an integer", name, KindName(v.kind()));
    return (v.as_int() % 2 != 0) == (name == "odd");
  }
  if (a.args.empty()) return Errorf("unknown test '{}' (or it needs an argument)", name);
  const Value& o = a.args[0];
  if (name == "equalto" || name == "eq" || name == "==" || name == "sameas") return v.Equals(o);
  if (name == "ne" || name == "!=") return !v.Equals(o);
  if (name == "divisibleby") {
    if (v.kind() != K::kInt || o.kind() != K::kInt || o.as_int() == 0) return Errorf("divisibleby: needs integers, a non-zero divisor");
    return v.as_int() % o.as_int() == 0;
  }
  if (name == "in") {
    if (o.is_array()) return std::any_of(o.array().begin(), o.array().end(), [&](const Value& e) { return e.Equals(v); });
    if (o.is_string()) return v.is_string() && o.str().find(v.str()) != std::string::npos;
    if (o.is_object()) return v.is_string() && !o.Get(v.str()).is_undefined();
    return false;
  }
  if (name == "gt" || name == "ge" || name == "lt" || name == "le" || name == "greaterthan" || name == "lessthan") {
    if (!v.is_number() || !o.is_number()) return Errorf("test '{}': needs numbers", name);
    const double x = v.as_double(), y = o.as_double();
    if (name == "gt" || name == "greaterthan") return x > y;
    if (name == "ge") return x >= y;
    if (name == "lt" || name == "lessthan") return x < y;
    return x <= y;
  }
  return Errorf("unknown test '{}'", name);
}

bool IsMethodName(const Value& obj, const std::string& name) {
  static constexpr const char* kString[] = {"strip", "lstrip", "rstrip", "split", "rsplit", "startswith", "endswith", "upper", "lower",
                                            "title", "capitalize", "replace", "find", "count", "join", "splitlines", "format"};
  static constexpr const char* kObject[] = {"items", "keys", "values", "get", "update", "pop", "setdefault"};
  static constexpr const char* kArray[] = {"append", "pop", "index", "count", "insert", "extend"};
  auto in = [&](const auto& list) { return std::any_of(std::begin(list), std::end(list), [&](const char* m) { return name == m; }); };
  if (obj.is_string()) return in(kString);
  if (obj.is_object()) return in(kObject);
  if (obj.is_array()) return in(kArray);
  return false;
}

std::optional<Expected<Value>> CallMethod(const Value& obj, const std::string& name, CallArgs& a) {
  if (obj.is_string()) {
    const std::string& s = obj.str();
    const Value arg0 = a.args.empty() ? Value() : a.args[0];
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
      const std::string* chars = arg0.is_string() ? &arg0.str() : nullptr;
      return Value(Strip(s, chars, name != "rstrip", name != "lstrip"));
    }
    if (name == "upper") return Value(Upper(s));
    if (name == "lower") return Value(Lower(s));
    if (name == "title") return Value(Title(s));
    if (name == "capitalize") return Value(Capitalize(s));
    if (name == "startswith" || name == "endswith") {
      Array prefixes = arg0.is_array() ? arg0.array() : Array{arg0};
      for (const Value& p : prefixes) {
        if (!p.is_string()) return Expected<Value>(Errorf("{}: needs a string", name));
        const std::string& q = p.str();
        const bool hit = q.size() <= s.size() && (name == "startswith" ? s.compare(0, q.size(), q) == 0 : s.compare(s.size() - q.size(), q.size(), q) == 0);
        if (hit) return Value(true);
      }
      return Value(false);
    }
    if (name == "replace") {
      if (a.args.size() < 2) return Expected<Value>(Errorf("replace: needs old and new"));
      return Value(Replace(s, a.args[0].ToString(), a.args[1].ToString(), a.args.size() > 2 ? a.args[2].as_int() : -1));
    }
    if (name == "find") return Value(arg0.is_string() ? (s.find(arg0.str()) == std::string::npos ? int64_t{-1} : static_cast<int64_t>(s.find(arg0.str()))) : int64_t{-1});
    if (name == "count") {
      if (!arg0.is_string() || arg0.str().empty()) return Expected<Value>(Errorf("count: needs a non-empty string"));
      int64_t n = 0;
      for (size_t p = s.find(arg0.str()); p != std::string::npos; p = s.find(arg0.str(), p + arg0.str().size())) ++n;
      return Value(n);
    }
    if (name == "join") {
      std::string out;
      bool first = true;
      for (const Value& e : ToList(arg0)) {
        if (!first) out += s;
        first = false;
        out += e.ToString();
      }
      return Value(std::move(out));
    }
    if (name == "split" || name == "rsplit") {
      const Value sep = ArgOr(a, 0, "sep", Value());
      const int64_t maxsplit = ArgOr(a, 1, "maxsplit", Value(int64_t{-1})).as_int();
      Array parts;
      if (sep.is_string()) {
        if (sep.str().empty()) return Expected<Value>(Errorf("split: empty separator"));
        size_t pos = 0;
        int64_t n = 0;
        if (name == "split") {
          for (size_t at; (maxsplit < 0 || n < maxsplit) && (at = s.find(sep.str(), pos)) != std::string::npos; ++n) {
            parts.emplace_back(s.substr(pos, at - pos));
            pos = at + sep.str().size();
          }
          parts.emplace_back(s.substr(pos));
        } else {
          size_t end = s.size();
          std::vector<std::string> rev;
          while (maxsplit < 0 || n < maxsplit) {
            if (end < sep.str().size()) break;
            const size_t at = s.rfind(sep.str(), end - sep.str().size());
            if (at == std::string::npos) break;
            rev.push_back(s.substr(at + sep.str().size(), end - at - sep.str().size()));
            end = at;
            ++n;
          }
          parts.emplace_back(s.substr(0, end));
          for (auto it = rev.rbegin(); it != rev.rend(); ++it) parts.emplace_back(*it);
        }
      } else {  // runs of whitespace
        size_t i = 0;
        int64_t n = 0;
        while (i < s.size()) {
          while (i < s.size() && IsWs(s[i])) ++i;
          if (i >= s.size()) break;
          if (maxsplit >= 0 && n == maxsplit) {
            parts.emplace_back(Strip(s.substr(i), nullptr, false, true));
            break;
          }
          size_t j = i;
          while (j < s.size() && !IsWs(s[j])) ++j;
          parts.emplace_back(s.substr(i, j - i));
          ++n;
          i = j;
        }
      }
      return Value(std::move(parts));
    }
    if (name == "splitlines") {
      Array parts;
      size_t pos = 0;
      while (pos < s.size()) {
        size_t nl = s.find('\n', pos);
        if (nl == std::string::npos) nl = s.size();
        parts.emplace_back(s.substr(pos, nl - pos));
        pos = nl + 1;
      }
      return Value(std::move(parts));
    }
    return std::nullopt;
  }
  if (obj.is_object()) {
    if (name == "items") return ApplyFilter("items", obj, a);
    if (name == "keys" || name == "values") {
      Array out;
      for (const auto& [k, v] : obj.object()) out.push_back(name == "keys" ? Value(k) : v);
      return Value(std::move(out));
    }
    if (name == "get") {
      if (a.args.empty() || !a.args[0].is_string()) return Value(a.args.size() > 1 ? a.args[1] : Value::None());
      const Value v = obj.Get(a.args[0].str());
      return v.is_undefined() ? (a.args.size() > 1 ? a.args[1] : Value::None()) : v;
    }
    if (name == "setdefault") {
      if (a.args.empty() || !a.args[0].is_string()) return Expected<Value>(Errorf("setdefault: needs a string key"));
      const Value v = obj.Get(a.args[0].str());
      if (!v.is_undefined()) return v;
      const Value def = a.args.size() > 1 ? a.args[1] : Value::None();
      if (def.Reaches(obj)) return Expected<Value>(Errorf("setdefault: a dict cannot contain itself"));
      obj.Set(a.args[0].str(), def);
      return def;
    }
    if (name == "update") {
      for (const Value& o : a.args) {
        if (o.is_object()) for (const auto& kv : o.object()) if (kv.second.Reaches(obj)) return Expected<Value>(Errorf("update: a dict cannot contain itself"));
      }
      for (const auto& kv : a.kwargs) {
        if (kv.second.Reaches(obj)) return Expected<Value>(Errorf("update: a dict cannot contain itself"));
      }
      for (const Value& o : a.args) {
        if (o.is_object()) for (const auto& [k, v] : o.object()) obj.Set(k, v);
      }
      for (const auto& [k, v] : a.kwargs) obj.Set(k, v);
      return Value::None();
    }
    if (name == "pop") {
      if (a.args.empty() || !a.args[0].is_string()) return Expected<Value>(Errorf("pop: needs a string key"));
      Object& o = obj.object();
      for (auto it = o.begin(); it != o.end(); ++it) {
        if (it->first == a.args[0].str()) {
          Value v = it->second;
          o.erase(it);
          return v;
        }
      }
      if (a.args.size() > 1) return a.args[1];
      return Expected<Value>(Errorf("pop: key '{}' not found", a.args[0].str()));
    }
    return std::nullopt;
  }
  if (obj.is_array()) {
    Array& l = obj.array();
    if (name == "append") {
      if (a.args.size() != 1) return Expected<Value>(Errorf("append: takes one argument"));
      if (l.size() >= kMaxListLength) return Expected<Value>(Errorf("append: list longer than {} items", kMaxListLength));
      if (a.args[0].Reaches(obj)) return Expected<Value>(Errorf("append: a list cannot contain itself"));
      l.push_back(a.args[0]);
      return Value::None();
    }
    if (name == "extend") {
      const Array more = ToList(a.args.empty() ? Value() : a.args[0]);
      if (more.size() > kMaxListLength - l.size()) return Expected<Value>(Errorf("extend: list longer than {} items", kMaxListLength));
      for (const Value& e : more) {
        if (e.Reaches(obj)) return Expected<Value>(Errorf("extend: a list cannot contain itself"));
      }
      l.insert(l.end(), more.begin(), more.end());
      return Value::None();
    }
    if (name == "insert") {
      if (a.args.size() != 2) return Expected<Value>(Errorf("insert: takes two arguments"));
      if (l.size() >= kMaxListLength) return Expected<Value>(Errorf("insert: list longer than {} items", kMaxListLength));
      if (a.args[1].Reaches(obj)) return Expected<Value>(Errorf("insert: a list cannot contain itself"));
      int64_t i = std::clamp<int64_t>(a.args[0].as_int(), -static_cast<int64_t>(l.size()), static_cast<int64_t>(l.size()));
      if (i < 0) i += static_cast<int64_t>(l.size());
      l.insert(l.begin() + i, a.args[1]);
      return Value::None();
    }
    if (name == "pop") {
      if (l.empty()) return Expected<Value>(Errorf("pop from an empty list"));
      int64_t i = a.args.empty() ? -1 : a.args[0].as_int();
      if (i < 0) i += static_cast<int64_t>(l.size());
      if (i < 0 || i >= static_cast<int64_t>(l.size())) return Expected<Value>(Errorf("pop index out of range"));
      Value v = l[static_cast<size_t>(i)];
      l.erase(l.begin() + i);
      return v;
    }
    if (name == "index") {
      for (size_t i = 0; i < l.size(); ++i) {
        if (!a.args.empty() && l[i].Equals(a.args[0])) return Value(static_cast<int64_t>(i));
      }
      return Expected<Value>(Errorf("index: value is not in the list"));
    }
    if (name == "count") {
      int64_t n = 0;
      for (const Value& e : l) n += !a.args.empty() && e.Equals(a.args[0]);
      return Value(n);
    }
  }
  return std::nullopt;
}

Value Globals() {
  Value g{Object{}};
  g.Set("range", Value::Func([](CallArgs& a) -> Expected<Value> {
          int64_t start = 0, stop, step = 1;
          for (const Value& v : a.args) {
            if (v.kind() != Value::Kind::kInt) return Errorf("range: arguments must be integers");
          }
          if (a.args.size() == 1) stop = a.args[0].as_int();
          else if (a.args.size() == 2 || a.args.size() == 3) {
            start = a.args[0].as_int();
            stop = a.args[1].as_int();
            if (a.args.size() == 3) step = a.args[2].as_int();
          } else {
            return Errorf("range: takes 1 to 3 arguments");
          }
          if (step == 0) return Errorf("range: step must not be zero");
          const double count = std::ceil((static_cast<double>(stop) - static_cast<double>(start)) / static_cast<double>(step));
          if (count > 1e6) return Errorf("range: {} items is too many", count);
          Array out;
          // The distance left to stop and the step's size, both exact in uint64: the loop ends
          // before i + step could leave the int64 range.
          const auto u = [](int64_t v) { return static_cast<uint64_t>(v); };
          const uint64_t stride = step > 0 ? u(step) : u(0) - u(step);
          for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
            out.emplace_back(i);
            if ((step > 0 ? u(stop) - u(i) : u(i) - u(stop)) <= stride) break;
          }
          return Value(std::move(out));
        }));
  g.Set("namespace", Value::Func([](CallArgs& a) -> Expected<Value> {
          Value ns{Object{}};
          for (const Value& o : a.args) {
            if (o.is_object()) for (const auto& [k, v] : o.object()) ns.Set(k, v);
          }
          for (const auto& [k, v] : a.kwargs) ns.Set(k, v);
          return ns;
        }));
  g.Set("dict", Value::Func([](CallArgs& a) -> Expected<Value> {
          Value d{Object{}};
          for (const auto& [k, v] : a.kwargs) d.Set(k, v);
          return d;
        }));
  g.Set("raise_exception", Value::Func([](CallArgs& a) -> Expected<Value> {
          return Errorf("{}", a.args.empty() ? std::string("raise_exception") : a.args[0].ToString());
        }));
  g.Set("strftime_now", Value::Func([](CallArgs& a) -> Expected<Value> {
          if (a.args.empty() || !a.args[0].is_string()) return Errorf("strftime_now: needs a format string");
          const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
          std::tm tm{};
          localtime_r(&t, &tm);
          char buf[256];
          const size_t n = std::strftime(buf, sizeof(buf), a.args[0].str().c_str(), &tm);
          return Value(std::string(buf, n));
        }));
  return g;
}

}  // namespace lowbit::jinja

#include "lowbit/template/value.h"

#include <cmath>
#include <unordered_set>

#include <fmt/format.h>

namespace lowbit::jinja {

const Value* CallArgs::Kw(std::string_view name) const {
  for (const auto& [k, v] : kwargs) {
    if (k == name) return &v;
  }
  return nullptr;
}

Value Value::Func(Function f) {
  Value v(Kind::kFunction);
  v.f_ = std::make_shared<Function>(std::move(f));
  return v;
}

Value Value::FromJson(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return None();
    case nlohmann::ordered_json::value_t::boolean: return Value(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Value(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      const uint64_t u = j.get<uint64_t>();
      return u > static_cast<uint64_t>(INT64_MAX) ? Value(static_cast<double>(u)) : Value(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float: return Value(j.get<double>());
    case nlohmann::ordered_json::value_t::string: return Value(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      Array a;
      a.reserve(j.size());
      for (const auto& e : j) a.push_back(FromJson(e));
      return Value(std::move(a));
    }
    case nlohmann::ordered_json::value_t::object: {
      Object o;
      o.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it) o.emplace_back(it.key(), FromJson(it.value()));
      return Value(std::move(o));
    }
    default: return Value();
  }
}

bool Value::Truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone: return false;
    case Kind::kBool:
    case Kind::kInt: return i_ != 0;
    case Kind::kFloat: return d_ != 0;
    case Kind::kString: return !s_.empty();
    case Kind::kArray: return !a_->empty();
    case Kind::kObject: return !o_->empty();
    case Kind::kFunction: return true;
  }
  return false;
}

namespace {

std::string FloatRepr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  std::string s = fmt::format("{}", d);
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

void JsonString(const std::string& s, std::string* out) {
  *out += '"';
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\n': *out += "\\n"; break;
      case '\r': *out += "\\r"; break;
      case '\t': *out += "\\t"; break;
      case '\b': *out += "\\b"; break;
      case '\f': *out += "\\f"; break;
      default:
        if (c < 0x20) *out += fmt::format("\\u{:04x}", c);
        else *out += ch;
    }
  }
  *out += '"';
}

Status JsonOf(const Value& v, int indent, int depth, std::string* out) {
  if (depth > 256) return Errorf("tojson: nesting deeper than 256");
  const auto newline = [&](int d) {
    *out += '\n';
    out->append(static_cast<size_t>(indent * d), ' ');
  };
  switch (v.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone: *out += "null"; break;
    case Value::Kind::kBool: *out += v.as_bool() ? "true" : "false"; break;
    case Value::Kind::kInt: *out += std::to_string(v.as_int()); break;
    case Value::Kind::kFloat: {
      const double d = v.as_double();
      *out += std::isnan(d) ? "NaN" : std::isinf(d) ? (d > 0 ? "Infinity" : "-Infinity") : FloatRepr(d);
      break;
    }
    case Value::Kind::kString: JsonString(v.str(), out); break;
    case Value::Kind::kFunction: return Errorf("tojson: a function is not JSON serializable");
    case Value::Kind::kArray: {
      const Array& a = v.array();
      if (a.empty()) {
        *out += "[]";
        break;
      }
      *out += '[';
      for (size_t i = 0; i < a.size(); ++i) {
        if (i > 0) *out += indent >= 0 ? "," : ", ";
        if (indent >= 0) newline(depth + 1);
        LOWBIT_RETURN_IF_ERROR(JsonOf(a[i], indent, depth + 1, out));
      }
      if (indent >= 0) newline(depth);
      *out += ']';
      break;
    }
    case Value::Kind::kObject: {
      const Object& o = v.object();
      if (o.empty()) {
        *out += "{}";
        break;
      }
      *out += '{';
      for (size_t i = 0; i < o.size(); ++i) {
        if (i > 0) *out += indent >= 0 ? "," : ", ";
        if (indent >= 0) newline(depth + 1);
        JsonString(o[i].first, out);
        *out += ": ";
        LOWBIT_RETURN_IF_ERROR(JsonOf(o[i].second, indent, depth + 1, out));
      }
      if (indent >= 0) newline(depth);
      *out += '}';
      break;
    }
  }
  return OkStatus();
}

}  // namespace

std::string Value::ToString() const {
  switch (kind_) {
    case Kind::kUndefined: return "";
    case Kind::kNone: return "None";
    case Kind::kBool: return i_ ? "True" : "False";
    case Kind::kInt: return std::to_string(i_);
    case Kind::kFloat: return FloatRepr(d_);
    case Kind::kString: return s_;
    case Kind::kFunction: return "<function>";
    case Kind::kArray: {
      std::string s = "[";
      for (size_t i = 0; i < a_->size(); ++i) {
        if (i > 0) s += ", ";
        const Value& e = (*a_)[i];
        s += e.is_string() ? "'" + e.str() + "'" : e.ToString();
      }
      return s + "]";
    }
    case Kind::kObject: {
      std::string s = "{";
      for (size_t i = 0; i < o_->size(); ++i) {
        if (i > 0) s += ", ";
        const Value& e = (*o_)[i].second;
        s += "'" + (*o_)[i].first + "': " + (e.is_string() ? "'" + e.str() + "'" : e.ToString());
      }
      return s + "}";
    }
  }
  return "";
}

Expected<std::string> Value::ToJson(int indent) const {
  std::string out;
  LOWBIT_RETURN_IF_ERROR(JsonOf(*this, indent, 0, &out));
  return out;
}

Value Value::Get(std::string_view key) const {
  if (kind_ != Kind::kObject) return Value();
  for (const auto& [k, v] : *o_) {
    if (k == key) return v;
  }
  return Value();
}

void Value::Set(const std::string& key, Value v) const {
  if (kind_ != Kind::kObject) return;
  for (auto& [k, old] : *o_) {
    if (k == key) {
      old = std::move(v);
      return;
    }
  }
  o_->emplace_back(key, std::move(v));
}

bool Value::Equals(const Value& o) const {
  if (is_number() && o.is_number()) {
    if (kind_ == Kind::kInt && o.kind_ == Kind::kInt) return i_ == o.i_;
    return as_double() == o.as_double();
  }
  if ((kind_ == Kind::kBool && o.is_number()) || (is_number() && o.kind_ == Kind::kBool)) return as_double() == o.as_double();
  if (kind_ != o.kind_) return false;
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone: return true;
    case Kind::kBool: return i_ == o.i_;
    case Kind::kString: return s_ == o.s_;
    case Kind::kArray: {
      if (a_->size() != o.a_->size()) return false;
      for (size_t i = 0; i < a_->size(); ++i) {
        if (!(*a_)[i].Equals((*o.a_)[i])) return false;
      }
      return true;
    }
    case Kind::kObject: {
      if (o_->size() != o.o_->size()) return false;
      for (const auto& [k, v] : *o_) {
        if (!v.Equals(o.Get(k))) return false;
      }
      return true;
    }
    case Kind::kFunction: return f_ == o.f_;
    default: return false;
  }
}

bool Value::Reaches(const Value& container) const {
  const void* target = container.is_array() ? static_cast<const void*>(container.a_.get())
                       : container.is_object() ? static_cast<const void*>(container.o_.get()) : nullptr;
  if (target == nullptr || !(is_array() || is_object())) return false;  // scalars: no walk, no allocation
  std::unordered_set<const void*> seen;  // shared sub-containers are walked once
  std::vector<const Value*> todo = {this};
  while (!todo.empty()) {
    const Value* v = todo.back();
    todo.pop_back();
    const void* p = v->is_array() ? static_cast<const void*>(v->a_.get()) : v->is_object() ? static_cast<const void*>(v->o_.get()) : nullptr;
    if (p == nullptr || !seen.insert(p).second) continue;
    if (p == target) return true;
    if (v->is_array()) {
      for (const Value& e : *v->a_) todo.push_back(&e);
    } else {
      for (const auto& kv : *v->o_) todo.push_back(&kv.second);
    }
  }
  return false;
}

Value Value::DeepCopy() const {
  if (is_array()) {
    Array a;
    a.reserve(a_->size());
    for (const Value& e : *a_) a.push_back(e.DeepCopy());
    return Value(std::move(a));
  }
  if (is_object()) {
    Object o;
    o.reserve(o_->size());
    for (const auto& [k, v] : *o_) o.emplace_back(k, v.DeepCopy());
    return Value(std::move(o));
  }
  return *this;
}

const char* KindName(Value::Kind k) {
  switch (k) {
    case Value::Kind::kUndefined: return "undefined";
    case Value::Kind::kNone: return "none";
    case Value::Kind::kBool: return "boolean";
    case Value::Kind::kInt: return "integer";
    case Value::Kind::kFloat: return "float";
    case Value::Kind::kString: return "string";
    case Value::Kind::kArray: return "list";
    case Value::Kind::kObject: return "dict";
    case Value::Kind::kFunction: return "function";
  }
  return "?";
}

}  // namespace lowbit::jinja

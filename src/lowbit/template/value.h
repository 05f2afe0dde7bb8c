// Values of the Jinja subset (template/template.h): Python's semantics as Jinja2 gives them to
// chat templates. Arrays, objects and namespaces are shared by reference (as in Python), so
// `ns.x = ...` inside a loop is seen outside it. Objects keep their keys in insertion order (a
// message's fields print and serialize in the order the request gave them).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "lowbit/base/status.h"

namespace lowbit::jinja {

class Value;
using Array = std::vector<Value>;
using Object = std::vector<std::pair<std::string, Value>>;

// Arguments of a call: positional, then keyword.
struct CallArgs {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;
  const Value* Kw(std::string_view name) const;
};
using Function = std::function<Expected<Value>(CallArgs&)>;

// Python-style int arithmetic wraps at 64 bits here (Python's ints do not overflow; templates never
// reach this range) and float -> int saturates: both defined for any input.
inline int64_t WrapAdd(int64_t a, int64_t b) { return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b)); }
inline int64_t WrapSub(int64_t a, int64_t b) { return static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b)); }
inline int64_t WrapMul(int64_t a, int64_t b) { return static_cast<int64_t>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b)); }
inline int64_t FloatToInt(double d) {
  if (!(d == d)) return 0;
  if (d >= 9223372036854775808.0) return INT64_MAX;
  if (d < -9223372036854775808.0) return INT64_MIN;
  return static_cast<int64_t>(d);
}

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kArray, kObject, kFunction };

  Value() = default;  // undefined
  static Value None() { return Value(Kind::kNone); }
  Value(bool b) : kind_(Kind::kBool), i_(b) {}                  // NOLINT: implicit by design
  Value(int64_t i) : kind_(Kind::kInt), i_(i) {}                 // NOLINT
  Value(int i) : kind_(Kind::kInt), i_(i) {}                     // NOLINT
  Value(double d) : kind_(Kind::kFloat), d_(d) {}                // NOLINT
  Value(std::string s) : kind_(Kind::kString), s_(std::move(s)) {}  // NOLINT
  Value(const char* s) : kind_(Kind::kString), s_(s) {}         // NOLINT
  Value(Array a) : kind_(Kind::kArray), a_(std::make_shared<Array>(std::move(a))) {}    // NOLINT
  Value(Object o) : kind_(Kind::kObject), o_(std::make_shared<Object>(std::move(o))) {}  // NOLINT
  static Value Func(Function f);
  static Value FromJson(const nlohmann::ordered_json& j);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat; }
  bool is_array() const { return kind_ == Kind::kArray; }
  bool is_object() const { return kind_ == Kind::kObject; }
  bool is_function() const { return kind_ == Kind::kFunction; }

  bool as_bool() const { return i_ != 0; }
  // A float converts toward zero, saturating at the int64 range (NaN -> 0): never undefined.
  int64_t as_int() const { return kind_ == Kind::kFloat ? FloatToInt(d_) : i_; }
  double as_double() const { return kind_ == Kind::kFloat ? d_ : static_cast<double>(i_); }
  const std::string& str() const { return s_; }
  Array& array() const { return *a_; }
  Object& object() const { return *o_; }
  const Function& function() const { return *f_; }

  // Python truthiness: empty strings and containers, 0, None and undefined are false.
  bool Truthy() const;
  // str(value) as Jinja prints it (None -> "None", True -> "True", 1.0 -> "1.0"; undefined -> "").
  std::string ToString() const;
  // json.dumps(value, ensure_ascii=False, indent=indent) as transformers' tojson filter does
  // (", " and ": " separators without indent). `indent` < 0: none.
  Expected<std::string> ToJson(int indent = -1) const;
  // Member of an object (undefined when absent or not an object).
  Value Get(std::string_view key) const;
  void Set(const std::string& key, Value v) const;  // objects only
  // == as Python compares (1 == 1.0; containers element by element).
  bool Equals(const Value& o) const;
  // Whether the list or dict `container` is this value or lies inside it. Values are shared by
  // reference, so storing a value into a container it reaches would make a cycle: printing it
  // would recurse without end and the shared pointers would never be freed. Mutations refuse it.
  bool Reaches(const Value& container) const;
  // A copy whose lists and dicts are new (functions stay shared): what a render may mutate.
  Value DeepCopy() const;

 private:
  explicit Value(Kind k) : kind_(k) {}
  Kind kind_ = Kind::kUndefined;
  int64_t i_ = 0;
  double d_ = 0;
  std::string s_;
  std::shared_ptr<Array> a_;
  std::shared_ptr<Object> o_;
  std::shared_ptr<Function> f_;
};

const char* KindName(Value::Kind k);

}  // namespace lowbit::jinja

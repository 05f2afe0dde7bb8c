// Filters, tests, methods and global functions of the Jinja subset (internal to template/).
#pragma once

#include <optional>
#include <string>

#include "lowbit/base/status.h"
#include "lowbit/template/value.h"

namespace lowbit::jinja {

// Longest list a template may build (append, extend, insert; any expression's value): a million
// items, as many as range() gives, ~100 MB of values.
constexpr size_t kMaxListLength = size_t{1} << 20;

Expected<Value> ApplyFilter(const std::string& name, const Value& in, const CallArgs& args);
Expected<bool> ApplyTest(const std::string& name, const Value& v, const CallArgs& args);
// obj.name(args) for the built-in methods of strings, lists and dicts; nullopt when `name` is
// not one of them (the caller then looks the attribute up).
std::optional<Expected<Value>> CallMethod(const Value& obj, const std::string& name, CallArgs& args);
bool IsMethodName(const Value& obj, const std::string& name);
// range, namespace, raise_exception, strftime_now, dict.
Value Globals();

// Attribute or item access as Jinja does it: object members, list/string indices (negative from
// the end), `loop`-style objects; undefined when absent.
Value GetItem(const Value& obj, const Value& key);

}  // namespace lowbit::jinja

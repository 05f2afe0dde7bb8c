// Status and Expected<T>: how bad input travels up to tools/.
//
// Bad input (a truncated file, a wrong value in a header) is not a bug: functions that read outside
// data return Status or Expected<T> whose message says what is wrong, where (file, byte offset or
// field) and what to do. Broken invariants inside lowbit use LOWBIT_CHECK (check.h) instead.
// Only tools/ turns an error into an exit code.
#pragma once

#include <fmt/format.h>

#include <optional>
#include <string>
#include <utility>

namespace lowbit {

class [[nodiscard]] Status {
 public:
  Status() = default;  // ok
  static Status Error(std::string message) { return Status(std::move(message)); }

  bool ok() const { return !message_.has_value(); }
  const std::string& message() const { return *message_; }

  // Prefixes context ("reading model.gguf: ") to an error; no-op on ok.
  Status WithContext(const std::string& context) const {
    if (ok()) return *this;
    return Status(context + ": " + *message_);
  }

 private:
  explicit Status(std::string m) : message_(std::move(m)) {}
  std::optional<std::string> message_;
};

inline Status OkStatus() { return Status(); }

template <typename... Args>
Status Errorf(fmt::format_string<Args...> f, Args&&... args) {
  return Status::Error(fmt::format(f, std::forward<Args>(args)...));
}

template <typename T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Expected(Status status) : status_(std::move(status)) {  // NOLINT
    if (status_.ok()) status_ = Status::Error("internal: Expected built from an ok Status");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }
  T&& operator*() && { return std::move(*value_); }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace lowbit

#define LOWBIT_CONCAT_INNER(a, b) a##b
#define LOWBIT_CONCAT(a, b) LOWBIT_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function when `expr` (a Status) is an error.
#define LOWBIT_RETURN_IF_ERROR(expr)            \
  do {                                          \
    ::lowbit::Status lowbit_status_ = (expr);   \
    if (!lowbit_status_.ok()) return lowbit_status_; \
  } while (0)

// `LOWBIT_ASSIGN_OR_RETURN(auto x, Fn())`: binds the value or returns the error.
#define LOWBIT_ASSIGN_OR_RETURN(lhs, expr) \
  LOWBIT_ASSIGN_OR_RETURN_IMPL(LOWBIT_CONCAT(lowbit_expected_, __LINE__), lhs, expr)
#define LOWBIT_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()

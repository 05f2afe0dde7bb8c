// LOWBIT_CHECK: broken invariants (bugs), never bad input. Aborts with file:line and a message.
#pragma once

#include <fmt/format.h>

namespace lowbit::internal {
[[noreturn]] void CheckFailed(const char* file, int line, const char* cond, const std::string& msg);
}  // namespace lowbit::internal

#define LOWBIT_CHECK(cond)                                                   \
  do {                                                                       \
    if (!(cond)) [[unlikely]]                                                \
      ::lowbit::internal::CheckFailed(__FILE__, __LINE__, #cond, "");        \
  } while (0)

#define LOWBIT_CHECK_MSG(cond, ...)                                          \
  do {                                                                       \
    if (!(cond)) [[unlikely]]                                                \
      ::lowbit::internal::CheckFailed(__FILE__, __LINE__, #cond,             \
                                      fmt::format(__VA_ARGS__));             \
  } while (0)

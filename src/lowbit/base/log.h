// Logging to stderr. Level from LOWBIT_LOG (error|warn|info|debug, default warn) or SetLogLevel.
#pragma once

#include <fmt/format.h>

#include <string_view>

namespace lowbit {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
void LogLine(LogLevel level, std::string_view message);

template <typename... Args>
void Log(LogLevel level, fmt::format_string<Args...> f, Args&&... args) {
  if (level <= GetLogLevel()) LogLine(level, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace lowbit

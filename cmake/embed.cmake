# Writes OUT: a C++ source defining `const std::string& FUNC()` in NAMESPACE that returns the bytes
# of IN (run at build time: cmake -DIN=... -DOUT=... -DFUNC=... -DNAMESPACE=... -P embed.cmake).
file(READ "${IN}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," bytes "${hex}")
file(WRITE "${OUT}.tmp" "// Generated from ${IN} by cmake/embed.cmake.\n#include <string>\nnamespace ${NAMESPACE} {\nnamespace { const char kBytes[] = {${bytes} 0}; }\nconst std::string& ${FUNC}() {\n  static const std::string s(kBytes, sizeof(kBytes) - 1);\n  return s;\n}\n}  // namespace ${NAMESPACE}\n")
file(RENAME "${OUT}.tmp" "${OUT}")

// libFuzzer target: the parser of OpenAI request bodies (server/openai.h), for chat and completions.
#include <cstddef>
#include <cstdint>
#include <string>

#include "lowbit/server/openai.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  (void)lowbit::server::ParseRequest(body, true, 32000);
  (void)lowbit::server::ParseRequest(body, false, 32000);
  return 0;
}

// ParseRequest (server/openai.h) on the edges the fuzzer and ASan/UBSan found: integers at the end
// of the int64 range and bodies nested far deeper than any real request. No model, no server.
#include <gtest/gtest.h>

#include <string>
#include <variant>

#include "lowbit/server/openai.h"

namespace lowbit::server {
namespace {

// The error's "param | message", or "ok".
std::string Outcome(const std::string& body, bool chat = true) {
  auto r = ParseRequest(body, chat, 32000);
  if (const auto* e = std::get_if<ApiError>(&r)) return e->param + " | " + e->message;
  return "ok";
}

std::string Chat(const std::string& extra) { return R"({"messages": [{"role": "user", "content": "x"}])" + extra + "}"; }

TEST(OpenAiRequest, SeedCoversInt64AndNothingBeyond) {
  auto r = ParseRequest(Chat(R"(, "seed": 9223372036854775807)"), true, 32000);
  ASSERT_TRUE(std::holds_alternative<ApiRequest>(r));
  EXPECT_EQ(std::get<ApiRequest>(r).gen.sampling.seed, 9223372036854775807ull);
  r = ParseRequest(Chat(R"(, "seed": -9223372036854775808)"), true, 32000);
  ASSERT_TRUE(std::holds_alternative<ApiRequest>(r));
  EXPECT_EQ(std::get<ApiRequest>(r).gen.sampling.seed, 9223372036854775808ull);
  EXPECT_EQ(Outcome(Chat(R"(, "seed": 4.0)")), "ok");
  // 2^63 as a float passed the range check (INT64_MAX as a double is 2^63) and its conversion to
  // int64 was undefined; as an unsigned it became a negative seed.
  EXPECT_EQ(Outcome(Chat(R"(, "seed": 9223372036854775808.0)")),
            "seed | 'seed' must be between -9223372036854775808 and 9223372036854775807, not 9.223372036854776e+18");
  EXPECT_EQ(Outcome(Chat(R"(, "seed": 9223372036854775808)")),
            "seed | 'seed' must be between -9223372036854775808 and 9223372036854775807, not 9223372036854775808");
  EXPECT_EQ(Outcome(Chat(R"(, "seed": 18446744073709551615)")).substr(0, 7), "seed | ");
  EXPECT_EQ(Outcome(Chat(R"(, "max_tokens": 1e300)")).substr(0, 13), "max_tokens | ");
  EXPECT_EQ(Outcome(Chat(R"(, "top_k": 16777216.0)")), "ok");
}

TEST(OpenAiRequest, DeeplyNestedBodiesAreRefused) {
  // Copying a message recursed once per level: a million '[' overflowed the stack.
  const std::string deep = std::string(1000000, '[') + std::string(1000000, ']');
  EXPECT_EQ(Outcome(Chat(R"(, "extra": )" + deep)), " | the request body is nested deeper than 64 levels");
  EXPECT_EQ(Outcome(R"({"messages": [{"role": "user", "content": "x", "tool_calls": )" + deep + "}]}"),
            " | the request body is nested deeper than 64 levels");
  EXPECT_EQ(Outcome(R"({"prompt": )" + deep + "}", false), " | the request body is nested deeper than 64 levels");
  // Real requests are a few levels deep; 60 levels inside a message still parse.
  EXPECT_EQ(Outcome(R"({"messages": [{"role": "user", "content": "x", "meta": )" + std::string(60, '[') + std::string(60, ']') + "}]}"), "ok");
}

}  // namespace
}  // namespace lowbit::server

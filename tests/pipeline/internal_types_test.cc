// quantize's type lookup never offers lowbit's internal weight types (W4G32 .. W8G128) as outputs:
// they are not GGUF types, so the name is unknown to it and the list of choices leaves them out.
#include <gtest/gtest.h>

#include <string>

#include "lowbit/numeric/ggml_type.h"
#include "lowbit/pipeline/quant_mix.h"

namespace lowbit {
namespace {

TEST(QuantizeTypes, InternalTypesAreNotOffered) {
  for (const std::string& name : QuantMixNames()) {
    const GgmlTypeInfo* t = FindGgmlTypeByName(name, /*include_internal=*/true);
    EXPECT_TRUE(t == nullptr || !t->internal) << name;
  }
  for (const GgmlTypeInfo& t : AllGgmlTypes()) {
    if (!t.internal) continue;
    auto mix = ResolveQuantMix(t.name);
    ASSERT_FALSE(mix.ok()) << t.name;
    const std::string& m = mix.status().message();
    EXPECT_NE(m.find("unknown type"), std::string::npos) << m;
    const size_t choices = m.find("choose one of");
    ASSERT_NE(choices, std::string::npos) << m;
    EXPECT_EQ(m.find("W4G", choices), std::string::npos) << m;
    EXPECT_EQ(m.find("W8G", choices), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace lowbit

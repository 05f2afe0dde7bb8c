// lowbit's internal weight types (numeric/ggml_type.h: W4G32 .. W8G128) never enter or leave a GGUF
// file: the reader rejects their ids with a message that says what they are, the writer refuses them.
// tests/corpus/gguf/type-internal-w4g128.bad is such a file.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "lowbit/formats/gguf_reader.h"
#include "lowbit/formats/gguf_writer.h"
#include "test_data.h"

namespace lowbit {
namespace {

// A one-tensor GGUF (F32 [128]) and the offset of that tensor's type id.
std::vector<uint8_t> OneTensorGguf(const testing::TempDir& dir, size_t* type_at) {
  GgufWriter w;
  w.SetKv("general.architecture", GgufValue::String("test"));
  const uint64_t dims[] = {128};
  EXPECT_TRUE(w.AddTensor("w", GgmlType::kF32, dims, [](std::span<uint8_t> o) {
                 std::memset(o.data(), 0, o.size());
                 return OkStatus();
               }).ok());
  EXPECT_TRUE(w.Write(dir.Path("one.gguf")).ok());
  std::vector<uint8_t> b = testing::ReadFileBytes(dir.Path("one.gguf"));
  // The tensor info: name length 1, "w", n_dims 1, dims[0] 128, then the type id.
  const uint8_t info[] = {1, 0, 0, 0, 0, 0, 0, 0, 'w', 1, 0, 0, 0, 128, 0, 0, 0, 0, 0, 0, 0};
  for (size_t i = 0; i + sizeof(info) < b.size(); ++i) {
    if (std::memcmp(b.data() + i, info, sizeof(info)) == 0) *type_at = i + sizeof(info);
  }
  return b;
}

TEST(GgufInternalTypes, ReaderRejectsTheirIds) {
  testing::TempDir dir;
  size_t type_at = 0;
  std::vector<uint8_t> b = OneTensorGguf(dir, &type_at);
  ASSERT_NE(type_at, 0u);
  ASSERT_TRUE(GgufFile::Parse(b, "one.gguf").ok());
  for (const GgmlTypeInfo& t : AllGgmlTypes()) {
    if (!t.internal) continue;
    const auto id = static_cast<uint32_t>(t.type);
    std::memcpy(b.data() + type_at, &id, 4);
    auto g = GgufFile::Parse(b, "one.gguf");
    ASSERT_FALSE(g.ok()) << t.name;
    const std::string& m = g.status().message();
    EXPECT_NE(m.find("one.gguf"), std::string::npos) << m;
    EXPECT_NE(m.find("tensor 'w'"), std::string::npos) << m;
    EXPECT_NE(m.find(std::string(t.name)), std::string::npos) << m;
    EXPECT_NE(m.find("in-memory"), std::string::npos) << m;
  }
}

TEST(GgufInternalTypes, WriterRefusesThem) {
  GgufWriter w;
  const uint64_t dims[] = {128, 2};
  Status s = w.AddTensor("blk.0.attn_q.weight", GgmlType::kW4G128, dims, [](std::span<uint8_t>) { return OkStatus(); });
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("blk.0.attn_q.weight"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("W4G128"), std::string::npos) << s.message();
  EXPECT_EQ(w.tensor_count(), 0u);
}

}  // namespace
}  // namespace lowbit

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "lowbit/formats/safetensors.h"
#include "test_data.h"

namespace lowbit {
namespace {

std::vector<uint8_t> WithHeader(const std::string& json, size_t data_bytes) {
  std::vector<uint8_t> b(8 + json.size() + data_bytes, 0);
  const uint64_t n = json.size();
  std::memcpy(b.data(), &n, 8);
  std::memcpy(b.data() + 8, json.data(), json.size());
  return b;
}

void ExpectError(const std::vector<uint8_t>& b, const std::string& fragment) {
  auto f = SafetensorsFile::Parse(b, "x.safetensors");
  ASSERT_FALSE(f.ok()) << "expected error containing: " << fragment;
  EXPECT_NE(f.status().message().find(fragment), std::string::npos) << f.status().message();
  EXPECT_NE(f.status().message().find("x.safetensors"), std::string::npos);
}

TEST(Safetensors, ParsesHandMadeFile) {
  auto b = WithHeader(R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]},)"
                      R"("e":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[12,16]}})", 16);
  auto f = SafetensorsFile::Parse(b, "x.safetensors");
  ASSERT_TRUE(f.ok()) << f.status().message();
  ASSERT_EQ(f->tensors().size(), 2u);
  EXPECT_EQ(f->tensors()[0].name, "w");  // data order
  EXPECT_EQ(f->Find("w")->shape, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(f->Find("e")->dtype, StDtype::kF8E4M3);
  EXPECT_EQ(f->metadata().at("format"), "pt");
}

TEST(Safetensors, RejectsBadFiles) {
  ExpectError({1, 2, 3}, "too short");
  auto b = WithHeader("{}", 0);
  b[0] = 0xff;
  ExpectError(b, "header size");
  ExpectError(WithHeader("[1,2]", 0), "not a JSON object");
  ExpectError(WithHeader("{\"w\":{\"dtype\":\"F16\"", 0), "not a JSON object");
  ExpectError(WithHeader(R"({"w":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}})", 1), "unknown dtype");
  ExpectError(WithHeader(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4), "span 4 bytes");
  ExpectError(WithHeader(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 2), "truncated");
  ExpectError(WithHeader(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4), "non-negative");
  ExpectError(WithHeader(R"({"w":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", 4), "overflow");
  ExpectError(WithHeader(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})", 4),
              "overlap");
  ExpectError(WithHeader(R"({"w":{"dtype":"F32","shape":[1]}})", 4), "data_offsets");
  ExpectError(WithHeader(R"({"__metadata__":{"a":1}})", 0), "must be a string");
}

TEST(Safetensors, EveryTruncationOfARealFileIsAnError) {
  LOWBIT_REQUIRE_SHARED();
  auto bytes = testing::ReadFileBytes(testing::SharedPath("models/stories260K/hf-bf16/model.safetensors"));
  ASSERT_TRUE(SafetensorsFile::Parse(bytes, "x.safetensors").ok());
  for (size_t n = 0; n < bytes.size(); n += (n < 12000 ? 1 : 997)) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<long>(n));
    ASSERT_FALSE(SafetensorsFile::Parse(cut, "x.safetensors").ok()) << n;
  }
}

TEST(Safetensors, WriterRoundTripsRealModel) {
  LOWBIT_REQUIRE_SHARED();
  auto src = SafetensorsFile::Open(testing::SharedPath("models/stories260K/hf-f32/model.safetensors"));
  ASSERT_TRUE(src.ok()) << src.status().message();
  EXPECT_EQ(src->tensors().size(), 47u);
  EXPECT_EQ(src->metadata().at("format"), "pt");
  SafetensorsWriter w;
  for (const auto& [k, v] : src->metadata()) w.SetMetadata(k, v);
  for (const StTensor& t : src->tensors()) {
    ASSERT_TRUE(w.Add(t.name, t.dtype, t.shape, [&t](std::span<uint8_t> out) {
                   std::memcpy(out.data(), t.data.data(), out.size());
                   return OkStatus();
                 }).ok());
  }
  testing::TempDir dir;
  ASSERT_TRUE(w.Write(dir.Path("out.safetensors")).ok());
  auto back = SafetensorsFile::Open(dir.Path("out.safetensors"));
  ASSERT_TRUE(back.ok()) << back.status().message();
  ASSERT_EQ(back->tensors().size(), src->tensors().size());
  for (const StTensor& t : src->tensors()) {
    const StTensor* b = back->Find(t.name);
    ASSERT_NE(b, nullptr) << t.name;
    EXPECT_EQ(b->shape, t.shape);
    EXPECT_EQ(b->dtype, t.dtype);
    EXPECT_EQ(std::memcmp(b->data.data(), t.data.data(), t.data.size()), 0) << t.name;
  }
  EXPECT_EQ(back->metadata(), src->metadata());
}

TEST(Safetensors, ShardedModelThroughIndex) {
  testing::TempDir dir;
  for (int s = 0; s < 2; ++s) {
    SafetensorsWriter w;
    const std::string name = s == 0 ? "a.weight" : "b.weight";
    ASSERT_TRUE(w.Add(name, StDtype::kF32, {2}, [s](std::span<uint8_t> out) {
                   float v[2] = {1.0f * s, 2.0f};
                   std::memcpy(out.data(), v, 8);
                   return OkStatus();
                 }).ok());
    ASSERT_TRUE(w.Write(dir.Path("model-0000" + std::to_string(s + 1) + "-of-00002.safetensors")).ok());
  }
  std::ofstream(dir.Path("model.safetensors.index.json"))
      << R"({"metadata":{},"weight_map":{"a.weight":"model-00001-of-00002.safetensors","b.weight":"model-00002-of-00002.safetensors"}})";
  auto m = SafetensorsModel::Open(dir.path().string());
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->tensors().size(), 2u);
  ASSERT_NE(m->Find("b.weight"), nullptr);
  EXPECT_EQ(m->files().size(), 2u);

  std::ofstream(dir.Path("model.safetensors.index.json"), std::ios::trunc)
      << R"({"weight_map":{"c.weight":"model-00001-of-00002.safetensors"}})";
  auto missing = SafetensorsModel::Open(dir.path().string());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("does not hold it"), std::string::npos);
  auto traversal = ParseSafetensorsIndex(R"({"weight_map":{"a":"../../etc/passwd"}})", "index.json");
  ASSERT_FALSE(traversal.ok());
  EXPECT_NE(traversal.status().message().find("not a plain file name"), std::string::npos);
}

}  // namespace
}  // namespace lowbit

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "lowbit/formats/gguf_reader.h"
#include "lowbit/formats/gguf_writer.h"
#include "test_data.h"

namespace lowbit {
namespace {
namespace fs = std::filesystem;

// A small valid GGUF: two metadata entries (one nested array) and two tensors (F32 and Q4_0).
std::vector<uint8_t> SmallGguf(const testing::TempDir& dir) {
  GgufWriter w;
  w.SetKv("general.architecture", GgufValue::String("test"));
  w.SetKv("test.nested", GgufValue::Array(GgufValueType::kArray,
                                          {GgufValue::Array(GgufValueType::kU8, {GgufValue::U8(1)})}));
  const uint64_t d1[] = {4, 2};
  const uint64_t d2[] = {32};
  EXPECT_TRUE(w.AddTensor("a", GgmlType::kF32, d1, [](std::span<uint8_t> o) {
                 for (size_t i = 0; i < o.size(); ++i) o[i] = static_cast<uint8_t>(i);
                 return OkStatus();
               }).ok());
  EXPECT_TRUE(w.AddTensor("b", GgmlType::kQ4_0, d2, [](std::span<uint8_t> o) {
                 std::memset(o.data(), 0x11, o.size());
                 return OkStatus();
               }).ok());
  EXPECT_TRUE(w.Write(dir.Path("small.gguf")).ok());
  return testing::ReadFileBytes(dir.Path("small.gguf"));
}

Status ParseBytes(const std::vector<uint8_t>& b) { return GgufFile::Parse(b, "t.gguf").status(); }

TEST(Gguf, WriterOutputReadsBack) {
  testing::TempDir dir;
  std::vector<uint8_t> bytes = SmallGguf(dir);
  auto g = GgufFile::Parse(bytes, "small.gguf");
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_EQ(g->version(), 3u);
  ASSERT_EQ(g->tensors().size(), 2u);
  EXPECT_EQ(*g->GetString("general.architecture"), "test");
  const GgufTensorInfo* a = g->FindTensor("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->n_bytes, 32u);
  EXPECT_EQ(a->data[5], 5);
  const GgufTensorInfo* b = g->FindTensor("b");
  EXPECT_EQ(b->offset, 32u);
  EXPECT_EQ(b->n_bytes, 18u);
  EXPECT_EQ(b->data[0], 0x11);
  EXPECT_EQ(bytes.size() % 32, 0u);
  EXPECT_EQ(g->data_offset() % 32, 0u);
  const GgufValue* nested = g->Find("test.nested");
  ASSERT_NE(nested, nullptr);
  EXPECT_EQ(nested->elements()[0].elements()[0].AsUInt(), 1u);
}

TEST(Gguf, ReadsGoldenFile) {
  LOWBIT_REQUIRE_SHARED();
  auto g = GgufFile::Open(testing::SharedPath("golden/quant-golden.gguf"));
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_EQ(g->tensors().size(), 395u);
  EXPECT_EQ(*g->GetString("general.architecture"), "golden");
  EXPECT_EQ(*g->GetUInt("general.quantization_version"), 2u);
  const GgufTensorInfo* t = g->FindTensor("gauss.input");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->type, GgmlType::kF32);
  EXPECT_EQ(t->ShapeString(), "[256, 4]");
  const GgufTensorInfo* q = g->FindTensor("outliers.q4_K.q");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->type, GgmlType::kQ4_K);
  EXPECT_EQ(q->n_bytes, 8u * 2 * 144);
  // Every ggml type the golden file uses is in the type table with the right size.
  for (const GgufTensorInfo& ti : g->tensors()) EXPECT_EQ(ti.data + ti.n_bytes <= g->tensors()[0].data + g->file_size(), true);
  auto tables = GgufFile::Open(testing::SharedPath("golden/iq-tables.gguf"));
  ASSERT_TRUE(tables.ok()) << tables.status().message();
  EXPECT_EQ(tables->Find("iq2s_grid")->elements().size(), 1024u);
}

// Every GGUF in ../shared, read and written back with the same metadata and tensors, gives the
// same bytes.
TEST(Gguf, RoundTripIsByteIdenticalForEverySharedFile) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  int checked = 0;
  for (const auto& e : fs::recursive_directory_iterator(testing::SharedDir())) {
    if (e.path().extension() != ".gguf") continue;
    SCOPED_TRACE(e.path().string());
    auto g = GgufFile::Open(e.path().string());
    ASSERT_TRUE(g.ok()) << g.status().message();
    auto w = GgufWriter::CopyOf(*g);
    ASSERT_TRUE(w.ok()) << w.status().message();
    EXPECT_EQ(w->FileSize(), g->file_size());
    const std::string out = dir.Path("copy.gguf");
    ASSERT_TRUE(w->Write(out).ok());
    EXPECT_TRUE(testing::ReadFileBytes(out) == testing::ReadFileBytes(e.path().string())) << "bytes differ";
    ++checked;
  }
  EXPECT_GE(checked, 20);
}

TEST(Gguf, EveryTruncationIsAnErrorNeverACrash) {
  testing::TempDir dir;
  std::vector<uint8_t> bytes = SmallGguf(dir);
  auto full = GgufFile::Parse(bytes, "t.gguf");
  ASSERT_TRUE(full.ok());
  // Only the zero padding after the last tensor may be cut: the data itself must be present.
  const size_t needed = full->data_offset() + full->FindTensor("b")->offset + full->FindTensor("b")->n_bytes;
  for (size_t n = needed; n <= bytes.size(); ++n) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<long>(n));
    ASSERT_TRUE(ParseBytes(cut).ok()) << n;
  }
  for (size_t n = 0; n < needed; ++n) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<long>(n));
    Status s = ParseBytes(cut);
    ASSERT_FALSE(s.ok()) << "prefix of " << n << " bytes parsed";
    ASSERT_NE(s.message().find("t.gguf"), std::string::npos) << s.message();
  }
}

// Offsets of fields in SmallGguf's bytes, found by searching, so the tests below can corrupt them.
struct Layout {
  std::vector<uint8_t> bytes;
  size_t tensor_a_ndims;  // offset of tensor "a"'s n_dims field
};

Layout SmallLayout(const testing::TempDir& dir) {
  Layout l{SmallGguf(dir), 0};
  // tensor info of "a": u64 len 1, 'a', then n_dims
  for (size_t i = 0; i + 9 < l.bytes.size(); ++i) {
    if (l.bytes[i] == 1 && std::memcmp(&l.bytes[i + 1], "\0\0\0\0\0\0\0a", 8) == 0) {
      l.tensor_a_ndims = i + 9;
      break;
    }
  }
  return l;
}

template <typename T>
void Poke(std::vector<uint8_t>& b, size_t at, T v) {
  std::memcpy(b.data() + at, &v, sizeof(T));
}

void ExpectError(const std::vector<uint8_t>& b, const std::string& fragment) {
  Status s = ParseBytes(b);
  ASSERT_FALSE(s.ok()) << "expected an error containing '" << fragment << "'";
  EXPECT_NE(s.message().find(fragment), std::string::npos) << s.message();
}

TEST(Gguf, RejectsHostileHeaders) {
  testing::TempDir dir;
  const Layout base = SmallLayout(dir);
  ASSERT_GT(base.tensor_a_ndims, 0u);
  auto b = base.bytes;
  b[0] = 'X';
  ExpectError(b, "not a GGUF file");
  b = base.bytes;
  std::memcpy(b.data(), "FUGG", 4);
  ExpectError(b, "big-endian");
  b = base.bytes;
  Poke<uint32_t>(b, 4, 1);
  ExpectError(b, "version 1");
  b = base.bytes;
  Poke<uint64_t>(b, 8, uint64_t{1} << 60);
  ExpectError(b, "tensor count");
  b = base.bytes;
  Poke<uint64_t>(b, 16, uint64_t{1} << 62);
  ExpectError(b, "metadata count");
  b = base.bytes;
  Poke<uint64_t>(b, 24, uint64_t{1} << 40);  // length of the first key
  ExpectError(b, "bytes are left");
}

TEST(Gguf, RejectsHostileTensorInfos) {
  testing::TempDir dir;
  const Layout base = SmallLayout(dir);
  const size_t nd = base.tensor_a_ndims;
  auto b = base.bytes;
  Poke<uint32_t>(b, nd, 5);
  ExpectError(b, "dimensions");
  b = base.bytes;
  Poke<uint32_t>(b, nd + 4 + 16, 4);  // type id after 2 dims: removed Q4_2
  ExpectError(b, "removed");
  b = base.bytes;
  Poke<uint32_t>(b, nd + 4 + 16, 99);
  ExpectError(b, "unknown ggml type id 99");
  b = base.bytes;
  Poke<uint32_t>(b, nd + 4 + 16, 2);  // Q4_0 with a row of 4
  ExpectError(b, "not a multiple of the Q4_0 block size");
  b = base.bytes;
  Poke<uint64_t>(b, nd + 4, uint64_t{1} << 62);  // dims[0]
  Poke<uint64_t>(b, nd + 12, uint64_t{1} << 62);
  ExpectError(b, "overflows");
  b = base.bytes;
  Poke<uint64_t>(b, nd + 4 + 16 + 4, 3);  // offset not aligned
  ExpectError(b, "not a multiple of the alignment");
  b = base.bytes;
  Poke<uint64_t>(b, nd + 4 + 16 + 4, 1u << 20);  // past the end
  ExpectError(b, "past the end");
  b = base.bytes;
  Poke<uint64_t>(b, nd + 4 + 16 + 4, 32);  // a overlaps b
  ExpectError(b, "overlap");
}

TEST(Gguf, RejectsBadMetadata) {
  auto make = [](auto fill) {
    GgufWriter w;
    fill(w);
    testing::TempDir d;
    EXPECT_TRUE(w.Write(d.Path("m.gguf")).ok());
    return testing::ReadFileBytes(d.Path("m.gguf"));
  };
  ExpectError(make([](GgufWriter& w) { w.SetKv("general.alignment", GgufValue::U32(24)); }), "power of two");
  ExpectError(make([](GgufWriter& w) { w.SetKv("general.alignment", GgufValue::U64(32)); }), "u32");
  ExpectError(make([](GgufWriter& w) { w.SetKv("flag", GgufValue::Scalar(GgufValueType::kBool, 2)); }), "must be 0 or 1");
  // Arrays nested nine deep.
  ExpectError(make([](GgufWriter& w) {
                GgufValue v = GgufValue::Array(GgufValueType::kU8, {});
                for (int i = 0; i < 9; ++i) v = GgufValue::Array(GgufValueType::kArray, {v});
                w.SetKv("deep", v);
              }),
              "nest deeper");
  // Duplicate key: write two entries with different keys, then rename the second to the first.
  auto b = make([](GgufWriter& w) {
    w.SetKv("key.a", GgufValue::U8(1));
    w.SetKv("key.b", GgufValue::U8(2));
  });
  for (size_t i = 0; i + 5 <= b.size(); ++i) {
    if (std::memcmp(&b[i], "key.b", 5) == 0) b[i + 4] = 'a';
  }
  ExpectError(b, "appears twice");
  // Array count larger than the file.
  b = make([](GgufWriter& w) { w.SetKv("arr", GgufValue::Array(GgufValueType::kU32, {GgufValue::U32(1)})); });
  for (size_t i = 0; i + 3 <= b.size(); ++i) {
    if (std::memcmp(&b[i], "arr", 3) == 0) {
      Poke<uint64_t>(b, i + 3 + 4 + 4, uint64_t{1} << 50);  // key | value type | element type | count
      break;
    }
  }
  ExpectError(b, "claims");
}

TEST(Gguf, WriterValidatesTensors) {
  GgufWriter w;
  const uint64_t bad_row[] = {100, 2};
  EXPECT_FALSE(w.AddTensor("q", GgmlType::kQ4_K, bad_row, nullptr).ok());
  const uint64_t five[] = {1, 1, 1, 1, 1};
  EXPECT_FALSE(w.AddTensor("x", GgmlType::kF32, five, nullptr).ok());
  EXPECT_FALSE(w.AddTensor(std::string(64, 'n'), GgmlType::kF32, {}, nullptr).ok());
  EXPECT_TRUE(w.AddTensor("ok", GgmlType::kF32, {}, [](std::span<uint8_t>) { return OkStatus(); }).ok());
  EXPECT_FALSE(w.AddTensor("ok", GgmlType::kF32, {}, nullptr).ok());
}

TEST(Gguf, FailedWriteLeavesNoFile) {
  testing::TempDir dir;
  GgufWriter w;
  const uint64_t d[] = {8};
  ASSERT_TRUE(w.AddTensor("t", GgmlType::kF32, d, [](std::span<uint8_t>) {
                 return Status::Error("source went away");
               }).ok());
  Status s = w.Write(dir.Path("out.gguf"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("source went away"), std::string::npos);
  EXPECT_TRUE(dir.List().empty());
}

}  // namespace
}  // namespace lowbit

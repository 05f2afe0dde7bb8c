// The GGUF form of an imatrix (formats/imatrix.h): values are in_sum2 / counts, and a count that is
// not a sane call count (NaN, negative, past INT32_MAX) gives a defined ncall instead of an
// out-of-range float -> int conversion (UBSan's float-cast-overflow caught 1e10).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "lowbit/formats/gguf_writer.h"
#include "lowbit/formats/imatrix.h"
#include "test_data.h"

namespace lowbit {
namespace {

// One matrix "w" of 2 rows of 4 columns: in_sum2 all 6, counts {c0, c1}.
std::string WriteImatrixGguf(const testing::TempDir& dir, float c0, float c1) {
  GgufWriter w;
  w.SetKv("general.type", GgufValue::String("imatrix"));
  auto put = [&](const char* name, std::vector<uint64_t> dims, std::vector<float> v) {
    ASSERT_TRUE(w.AddTensor(name, GgmlType::kF32, dims, [v](std::span<uint8_t> o) {
                   std::memcpy(o.data(), v.data(), o.size());
                   return OkStatus();
                 }).ok());
  };
  put("w.in_sum2", {4, 2}, std::vector<float>(8, 6.0f));
  put("w.counts", {1, 2}, {c0, c1});
  const std::string path = dir.Path("imatrix.gguf");
  EXPECT_TRUE(w.Write(path).ok());
  return path;
}

TEST(ImatrixGguf, ValuesAreSumsOverCounts) {
  testing::TempDir dir;
  auto m = LoadImatrix(WriteImatrixGguf(dir, 2.0f, 3.0f));
  ASSERT_TRUE(m.ok()) << m.status().message();
  ASSERT_EQ(m->entries.size(), 1u);
  const ImatrixEntry& e = m->entries[0];
  EXPECT_EQ(e.name, "w");
  EXPECT_EQ(e.ncall, 3);
  EXPECT_EQ(e.values, (std::vector<float>{3, 3, 3, 3, 2, 2, 2, 2}));
}

TEST(ImatrixGguf, HostileCountsGiveADefinedCallCount) {
  testing::TempDir dir;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::pair<float, float> cases[] = {{1e10f, 1.0f}, {nan, 1.0f}, {-5.0f, nan}, {std::numeric_limits<float>::infinity(), 0.0f}};
  const int32_t want[] = {INT32_MAX, 1, 0, INT32_MAX};
  for (size_t i = 0; i < std::size(cases); ++i) {
    SCOPED_TRACE(i);
    auto m = LoadImatrix(WriteImatrixGguf(dir, cases[i].first, cases[i].second));
    ASSERT_TRUE(m.ok()) << m.status().message();
    EXPECT_EQ(m->entries[0].ncall, want[i]);
  }
}

}  // namespace
}  // namespace lowbit

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <numeric>
#include <vector>

#include "lowbit/base/aligned_buffer.h"
#include "lowbit/base/atomic_file.h"
#include "lowbit/base/cpu_features.h"
#include "lowbit/base/mapped_file.h"
#include "lowbit/base/status.h"
#include "lowbit/base/thread_pool.h"
#include "test_data.h"

namespace lowbit {
namespace {

Expected<int> ParsePositive(int v) {
  if (v <= 0) return Errorf("value {} must be positive", v);
  return v;
}

Status UsesMacros(int v, int* out) {
  LOWBIT_ASSIGN_OR_RETURN(*out, ParsePositive(v));
  LOWBIT_RETURN_IF_ERROR(OkStatus());
  return OkStatus();
}

TEST(Status, CarriesMessagesAndContext) {
  EXPECT_TRUE(OkStatus().ok());
  Status e = Errorf("bad {}", 7).WithContext("file.gguf");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.message(), "file.gguf: bad 7");
  int out = 0;
  EXPECT_TRUE(UsesMacros(3, &out).ok());
  EXPECT_EQ(out, 3);
  Status bad = UsesMacros(-1, &out);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.message(), "value -1 must be positive");
}

TEST(ThreadPool, ParallelForCoversEveryIndexOnce) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{1000}, size_t{100003}}) {
      std::vector<std::atomic<int>> hits(n);
      pool.ParallelFor(n, [&](size_t b, size_t e) {
        for (size_t i = b; i < e; ++i) hits[i].fetch_add(1);
      });
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "n=" << n << " i=" << i;
    }
  }
}

// Runs ParallelFor over [0, n), expects every index covered exactly once, and returns the chunks.
std::vector<std::pair<size_t, size_t>> ChunksOf(ThreadPool& pool, size_t n, size_t grain, size_t min_grain = 0) {
  std::mutex mu;
  std::vector<std::pair<size_t, size_t>> chunks;
  std::vector<std::atomic<int>> hits(n);
  pool.ParallelFor(
      n,
      [&](size_t b, size_t e) {
        for (size_t i = b; i < e; ++i) hits[i].fetch_add(1);
        std::lock_guard<std::mutex> lock(mu);
        chunks.emplace_back(b, e);
      },
      grain, min_grain);
  size_t wrong = 0, first = n;
  for (size_t i = 0; i < n; ++i) {
    if (hits[i].load() != 1 && wrong++ == 0) first = i;
  }
  EXPECT_EQ(wrong, 0u) << "indices not run exactly once, the first " << first << ", n=" << n << " grain=" << grain;
  return chunks;
}

// MatMulGroup relies on this: with a grain that is a multiple of 8, no chunk splits a group of 8 rows.
TEST(ThreadPool, ChunksStartOnMultiplesOfTheGrainAndNoneIsLonger) {
  for (int threads : {2, 3}) {
    ThreadPool pool(threads);
    for (size_t n : {size_t{5}, size_t{64}, size_t{1003}}) {
      const auto chunks = ChunksOf(pool, n, 8);
      for (const auto& [b, e] : chunks) {
        EXPECT_EQ(b % 8, 0u) << "n=" << n;
        EXPECT_LE(e - b, 8u) << "n=" << n;
        EXPECT_TRUE(e - b == 8 || e == n) << "a short chunk before the end: [" << b << ", " << e << ") of " << n;
      }
    }
  }
}

// The decode products pass a min_grain of 8: chunks shrink towards each region's end, yet never split
// a group of 8 rows and never exceed the grain (rounded up to a multiple of min_grain).
TEST(ThreadPool, ChunksShrinkToTheMinGrainAtTheEndOfARegion) {
  for (int threads : {2, 3}) {
    ThreadPool pool(threads);
    for (size_t n : {size_t{5}, size_t{64}, size_t{1003}, size_t{11264}}) {
      for (size_t grain : {size_t{20}, size_t{96}, size_t{352}}) {
        const auto chunks = ChunksOf(pool, n, grain, 8);
        const size_t rounded = (grain + 7) / 8 * 8;
        for (const auto& [b, e] : chunks) {
          EXPECT_EQ(b % 8, 0u) << "n=" << n << " grain=" << grain;
          EXPECT_LE(e - b, rounded) << "n=" << n << " grain=" << grain;
          if (e == n && n > rounded) {
            EXPECT_LE(e - b, 8u) << "the last chunk [" << b << ", " << e << ") of " << n << " did not shrink, grain " << grain;
          }
        }
      }
    }
  }
}

TEST(ThreadPool, ManyConsecutiveJobs) {
  ThreadPool pool(3);
  std::atomic<long> total{0};
  for (int job = 0; job < 2000; ++job) {
    pool.ParallelFor(64, [&](size_t b, size_t e) { total.fetch_add(static_cast<long>(e - b)); }, 1);
  }
  EXPECT_EQ(total.load(), 2000L * 64);
}

TEST(AlignedBuffer, AlignedZeroedAndMovable) {
  AlignedBuffer b(1000);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % 64, 0u);
  for (size_t i = 0; i < b.size(); ++i) ASSERT_EQ(b.data()[i], 0);
  b.data()[5] = 9;
  AlignedBuffer c = std::move(b);
  EXPECT_EQ(c.size(), 1000u);
  EXPECT_EQ(c.data()[5], 9);
  c.Resize(10);  // shrink keeps the allocation
  EXPECT_EQ(c.size(), 10u);
}

// What Open() and Read() share: an empty file gives an empty view; a missing file and a directory
// are errors that name the problem.
void ExpectEmptyFileAndErrors(const testing::TempDir& dir, Expected<MappedFile> (*open)(const std::string&)) {
  testing::WriteFileBytes(dir.Path("empty.bin"), {});
  auto e = open(dir.Path("empty.bin"));
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->size(), 0u);
  auto missing = open(dir.Path("nope.bin"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("nope.bin"), std::string::npos);
  auto d = open(dir.path().string());
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("directory"), std::string::npos);
}

TEST(MappedFile, MapsBytesAndReportsErrors) {
  testing::TempDir dir;
  testing::WriteFileBytes(dir.Path("a.bin"), {1, 2, 3});
  auto m = MappedFile::Open(dir.Path("a.bin"));
  ASSERT_TRUE(m.ok()) << m.status().message();
  ASSERT_EQ(m->size(), 3u);
  EXPECT_EQ(m->data()[2], 3);
  ExpectEmptyFileAndErrors(dir, MappedFile::Open);
}

// Read() gives the file's bytes in a 2 MiB-aligned copy (a size that is no multiple of a page, over
// two huge pages), which DropPages leaves alone (MADV_DONTNEED would zero anonymous pages), and the
// same errors as Open(). Load() picks by Residency.
TEST(MappedFile, ReadCopiesTheBytesAndReportsErrors) {
  testing::TempDir dir;
  std::vector<uint8_t> bytes((size_t{5} << 20) + 123);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 7 + (i >> 12));
  testing::WriteFileBytes(dir.Path("a.bin"), bytes);
  auto m = MappedFile::Read(dir.Path("a.bin"));
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_TRUE(m->copied());
  ASSERT_EQ(m->size(), bytes.size());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(m->data()) % (uintptr_t{2} << 20), 0u);
  EXPECT_TRUE(std::equal(bytes.begin(), bytes.end(), m->data()));
  m->DropPages(m->bytes());
  EXPECT_TRUE(std::equal(bytes.begin(), bytes.end(), m->data()));
  MappedFile moved = std::move(*m);
  EXPECT_TRUE(moved.copied());
  EXPECT_EQ(moved.data()[bytes.size() - 1], bytes.back());

  ExpectEmptyFileAndErrors(dir, MappedFile::Read);

  auto mapped = MappedFile::Load(dir.Path("a.bin"), Residency::kMapped);
  ASSERT_TRUE(mapped.ok());
  EXPECT_FALSE(mapped->copied());
  auto read = MappedFile::Load(dir.Path("a.bin"), Residency::kInMemory);
  ASSERT_TRUE(read.ok());
  EXPECT_TRUE(read->copied());
  EXPECT_TRUE(std::equal(bytes.begin(), bytes.end(), read->data()));
  auto gone = MappedFile::Load(dir.Path("nope.bin"), Residency::kAuto);
  ASSERT_FALSE(gone.ok());
  EXPECT_NE(gone.status().message().find("nope.bin"), std::string::npos);
}

TEST(MappedFile, AutoResidencyMapsWhatDoesNotFitInHalfOfMemory) {
  EXPECT_EQ(ChooseResidency(Residency::kMapped, 1), Residency::kMapped);
  EXPECT_EQ(ChooseResidency(Residency::kInMemory, size_t{1} << 60), Residency::kInMemory);
  EXPECT_EQ(ChooseResidency(Residency::kAuto, size_t{1} << 60), Residency::kMapped);
  // A 1 MiB file is read wherever the kernel offers huge pages (MemAvailable is read, not 0).
  std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string modes((std::istreambuf_iterator<char>(thp)), std::istreambuf_iterator<char>());
  if (modes.find("[always]") != std::string::npos || modes.find("[madvise]") != std::string::npos) {
    EXPECT_EQ(ChooseResidency(Residency::kAuto, size_t{1} << 20), Residency::kInMemory) << modes;
  }
}

TEST(AtomicFile, RenamesOnCommitAndLeavesNothingOnDiscard) {
  testing::TempDir dir;
  {
    auto f = AtomicFile::Create(dir.Path("out.bin"));
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(f->Write("abc", 3).ok());
    EXPECT_FALSE(std::filesystem::exists(dir.Path("out.bin")));  // not visible until committed
    // destroyed without Commit
  }
  EXPECT_TRUE(dir.List().empty());
  auto f = AtomicFile::Create(dir.Path("out.bin"));
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(f->Write("abc", 3).ok());
  ASSERT_TRUE(f->WriteZeros(5).ok());
  EXPECT_EQ(f->offset(), 8u);
  ASSERT_TRUE(f->Commit().ok());
  EXPECT_EQ(testing::ReadFileBytes(dir.Path("out.bin")), (std::vector<uint8_t>{'a', 'b', 'c', 0, 0, 0, 0, 0}));
  EXPECT_EQ(dir.List().size(), 1u);
}

TEST(CpuFeatures, LevelsAreConsistent) {
  const CpuFeatures& f = GetCpuFeatures();
  std::vector<Isa> isas = SupportedIsas();
  ASSERT_FALSE(isas.empty());
  EXPECT_EQ(isas.front(), Isa::kRef);
  if (MaxSupportedIsa() >= Isa::kAvx2) {
    EXPECT_TRUE(f.avx2 && f.fma && f.f16c);
  }
  if (MaxSupportedIsa() >= Isa::kAvx512) {
    EXPECT_TRUE(f.avx512f && f.avx512bw && f.avx512vl);
  }
  Isa parsed;
  EXPECT_TRUE(ParseIsa("avx2", &parsed));
  EXPECT_EQ(parsed, Isa::kAvx2);
  EXPECT_FALSE(ParseIsa("sse9", &parsed));
  EXPECT_FALSE(f.ToString().empty());
}

}  // namespace
}  // namespace lowbit

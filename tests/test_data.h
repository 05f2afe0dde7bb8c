// Test helpers: locating ../shared (skip with a clear message when it is absent), temporary
// folders, and small file utilities.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace lowbit::testing {

// The shared data folder: $LOWBIT_SHARED, else ../shared beside the source checkout; empty if absent.
std::string SharedDir();
std::string SharedPath(const std::string& relative);
// Folder of checked-in test files (tests/corpus).
std::string CorpusDir();

// A fresh temporary folder removed at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  std::string Path(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }
  // Files currently in the folder (names only).
  std::vector<std::string> List() const;

 private:
  std::filesystem::path path_;
};

std::vector<uint8_t> ReadFileBytes(const std::string& path);
void WriteFileBytes(const std::string& path, const std::vector<uint8_t>& bytes);

}  // namespace lowbit::testing

#define LOWBIT_REQUIRE_SHARED()                                                                 \
  do {                                                                                          \
    if (::lowbit::testing::SharedDir().empty())                                                 \
      GTEST_SKIP() << "shared test data not found (set LOWBIT_SHARED or put ../shared beside "  \
                      "the checkout); skipping";                                                \
  } while (0)

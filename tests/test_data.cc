#include "test_data.h"

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>

namespace lowbit::testing {
namespace fs = std::filesystem;

std::string SharedDir() {
  if (const char* env = std::getenv("LOWBIT_SHARED"); env != nullptr && fs::is_directory(env)) return env;
  fs::path p = fs::path(LOWBIT_SOURCE_DIR).parent_path() / "shared";
  if (fs::is_directory(p / "models")) return p.string();
  return {};
}

std::string SharedPath(const std::string& relative) { return (fs::path(SharedDir()) / relative).string(); }

std::string CorpusDir() { return (fs::path(LOWBIT_SOURCE_DIR) / "tests" / "corpus").string(); }

TempDir::TempDir() {
  std::random_device rd;
  path_ = fs::temp_directory_path() / ("lowbit-test-" + std::to_string(rd()) + std::to_string(rd()));
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::vector<std::string> TempDir::List() const {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(path_)) out.push_back(e.path().filename().string());
  return out;
}

std::vector<uint8_t> ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void WriteFileBytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace lowbit::testing

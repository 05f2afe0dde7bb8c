#include "lowbit/advise/probe_cache.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "lowbit/base/atomic_file.h"

namespace lowbit {
namespace {

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

std::string ProbeCacheKey(int version, int threads, Isa isa) {
  std::string boot = ReadSmallFile("/proc/sys/kernel/random/boot_id");
  boot.erase(std::remove(boot.begin(), boot.end(), '\n'), boot.end());
  std::error_code ec;
  const std::string exe = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  struct stat st {};
  if (boot.empty() || exe.empty() || ::stat(exe.c_str(), &st) != 0) return "";
  return fmt::format("v{}|{}|{}|{}|{}|{}|{}", version, boot, exe, static_cast<long long>(st.st_size), static_cast<long long>(st.st_mtime),
                     IsaName(isa), threads);
}

std::string ProbeCachePath(const std::string& name) {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  if (xdg != nullptr && xdg[0] == '/') return std::string(xdg) + "/lowbit/" + name;
  if (home != nullptr && home[0] == '/') return std::string(home) + "/.cache/lowbit/" + name;
  return "";
}

nlohmann::json ReadProbeCache(const std::string& path) {
  auto j = nlohmann::json::parse(ReadSmallFile(path), nullptr, false);
  return j.is_object() ? j : nlohmann::json::object();
}

void WriteProbeCache(const std::string& path, const std::string& key, const nlohmann::json& value) {
  nlohmann::json all = ReadProbeCache(path), kept = nlohmann::json::object();
  const std::string boot = key.substr(0, key.find('|', key.find('|') + 1));
  for (const auto& [k, v] : all.items()) {
    if (k.rfind(boot, 0) == 0) kept[k] = v;
  }
  kept[key] = value;
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  auto f = AtomicFile::Create(path);
  if (!f.ok()) return;
  const std::string text = kept.dump(1) + "\n";
  if (f->Write(text.data(), text.size()).ok()) (void)f->Commit();
}

}  // namespace lowbit

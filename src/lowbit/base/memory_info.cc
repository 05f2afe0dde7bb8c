#include "lowbit/base/memory_info.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace lowbit {
namespace {

// The first number in a file ("max" or a missing file: 0).
uint64_t ReadNumber(const std::string& path) {
  std::ifstream in(path);
  unsigned long long v = 0;
  std::string s;
  if (!(in >> s) || std::sscanf(s.c_str(), "%llu", &v) != 1) return 0;
  return v;
}

// `key value` from a memory.stat file (0 when absent).
uint64_t StatValue(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string k;
  unsigned long long v = 0;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return 0;
}

struct CgroupMemory {
  uint64_t limit = 0, usage = 0, file = 0;  // bytes; limit 0: none
};

// The tightest limit from the process's memory cgroup up to the root of the hierarchy. Limits of
// 2^62 and more mean "none" (v1 writes 2^63 - 4096).
CgroupMemory ReadCgroup() {
  CgroupMemory cg;
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    const size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    const bool v2 = controllers.empty() && line.compare(0, a, "0") == 0;
    const bool v1 = ("," + controllers + ",").find(",memory,") != std::string::npos;
    if (!v1 && !v2) continue;
    const std::string root = v2 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/memory";
    const std::string limit_file = v2 ? "/memory.max" : "/memory.limit_in_bytes";
    const std::string usage_file = v2 ? "/memory.current" : "/memory.usage_in_bytes";
    for (std::string p = path == "/" ? "" : path;; p = p.substr(0, p.rfind('/'))) {
      const uint64_t limit = ReadNumber(root + p + limit_file);
      if (limit > 0 && limit < (uint64_t{1} << 62) && (cg.limit == 0 || limit < cg.limit)) {
        cg.limit = limit;
        cg.usage = ReadNumber(root + p + usage_file);
        cg.file = StatValue(root + p + "/memory.stat", v2 ? "file" : "total_cache");
      }
      if (p.empty()) break;
    }
    if (v2 && cg.limit != 0) break;
  }
  return cg;
}

}  // namespace

MemoryInfo ReadMemoryInfo() {
  MemoryInfo m;
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    unsigned long long kib = 0;
    if (std::sscanf(line.c_str(), "MemTotal: %llu kB", &kib) == 1) m.total = kib * 1024;
    if (std::sscanf(line.c_str(), "MemAvailable: %llu kB", &kib) == 1) m.available = kib * 1024;
  }
  const CgroupMemory cg = ReadCgroup();
  if (cg.limit != 0) {
    m.cgroup_limit = cg.limit;
    const uint64_t used = cg.usage > cg.file ? cg.usage - cg.file : 0;  // its page cache can be reclaimed
    const uint64_t left = cg.limit > used ? cg.limit - used : 0;
    m.total = m.total == 0 ? cg.limit : std::min(m.total, cg.limit);
    m.available = m.available == 0 ? left : std::min(m.available, left);
  }
  return m;
}

uint64_t PeakResidentBytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    unsigned long long kib = 0;
    if (std::sscanf(line.c_str(), "VmHWM: %llu kB", &kib) == 1) return kib * 1024;
  }
  return 0;
}

bool TransparentHugePages() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::stringstream s;
  s << in.rdbuf();
  const std::string v = s.str();
  return v.find("[always]") != std::string::npos || v.find("[madvise]") != std::string::npos;
}

}  // namespace lowbit

// The memory this process may use: /proc/meminfo (MemTotal, MemAvailable) narrowed by the memory
// limit of its control group (cgroup v2 memory.max, v1 memory.limit_in_bytes, the tightest on the
// path to the root), as a container's limit is the one that gets a process killed, not the host's;
// and whether the kernel offers transparent huge pages to anonymous memory.
#pragma once

#include <cstdint>

namespace lowbit {

struct MemoryInfo {
  uint64_t total = 0;      // MemTotal, or the cgroup limit when lower
  uint64_t available = 0;  // MemAvailable, or what the cgroup limit leaves (its page cache counted free), when lower
  uint64_t cgroup_limit = 0;  // 0: none
};

// Read fresh on every call. Fields are 0 when /proc/meminfo cannot be read.
MemoryInfo ReadMemoryInfo();

// The peak resident set of this process since it started (VmHWM of /proc/self/status; 0 if unknown).
uint64_t PeakResidentBytes();

// Whether madvise(MADV_HUGEPAGE) can give anonymous memory 2 MiB pages ("always" or "madvise").
bool TransparentHugePages();

}  // namespace lowbit

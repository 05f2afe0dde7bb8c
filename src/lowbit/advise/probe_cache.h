// This boot's measurements of the machine, kept between runs of `lowbit advise`: JSON files in
// $XDG_CACHE_HOME/lowbit (or ~/.cache/lowbit), one object per file whose entries are keyed by the
// format version, the boot id, the executable (path, size, time), the ISA and the thread count, so a
// rebuilt lowbit, a reboot or a new format measures again. Entries of other boots are dropped when
// a file is written.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "lowbit/base/cpu_features.h"

namespace lowbit {

// "" when this machine gives no boot id or executable to key by (nothing is cached then).
std::string ProbeCacheKey(int version, int threads, Isa isa);
// The path of cache file `name` ("machine.json"); "" without a cache directory.
std::string ProbeCachePath(const std::string& name);
// The file's object (empty when absent or broken).
nlohmann::json ReadProbeCache(const std::string& path);
// Sets entry `key` to `value`, keeping the entries of this boot only; a file that cannot be written
// costs a measurement next time, nothing else.
void WriteProbeCache(const std::string& path, const std::string& key, const nlohmann::json& value);

}  // namespace lowbit

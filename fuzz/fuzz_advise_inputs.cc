// libFuzzer target: what `lowbit advise` parses from outside: flag values (sizes, rates, times, a
// network) and the per-boot machine cache (~/.cache/lowbit/machine.json, which anything may have
// written). Property: never a crash, and what is accepted is in range.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "lowbit/advise/hardware.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string s(reinterpret_cast<const char*>(data), size);
  if (auto b = lowbit::ParseBytes(s, "--ram"); b.ok() && (*b < 1 || *b > uint64_t{1000000000000000000})) std::abort();
  if (auto r = lowbit::ParseBytesPerSecond(s, "--bandwidth"); r.ok() && !(*r >= 1e5 && *r <= 1e14)) std::abort();
  if (auto t = lowbit::ParseSeconds(s, "--net"); t.ok() && !(*t >= 0 && *t <= 10)) std::abort();
  (void)lowbit::ParseNetwork(s, "--net");
  const nlohmann::json j = nlohmann::json::parse(s, nullptr, false);
  lowbit::MachineSpeed m;
  if (lowbit::MachineSpeed::FromJson(j, &m) && (m.threads < 1 || !(m.bandwidth_gbps > 0) || m.types.empty())) std::abort();
  return 0;
}

#include "lowbit/parallel/agree.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace lowbit {

Status AgreeOnStatus(Comm* comm, const Status& mine) {
  const int n = comm->size();
  if (n == 1) return mine;
  const int32_t failed = mine.ok() ? 0 : 1;
  std::vector<int32_t> all(static_cast<size_t>(n));
  comm->AllGatherBytes(&failed, sizeof(failed), all.data());
  const auto first = std::find(all.begin(), all.end(), 1);
  if (first == all.end()) return OkStatus();
  const int root = static_cast<int>(first - all.begin());
  // The first failed rank tells the others what went wrong (at most 1000 bytes).
  std::string msg = comm->rank() == root ? mine.message().substr(0, 1000) : std::string();
  uint32_t len = static_cast<uint32_t>(msg.size());
  comm->Broadcast(&len, sizeof(len), root);
  msg.resize(len);
  comm->Broadcast(msg.data(), len, root);
  if (!mine.ok()) return mine;
  return Errorf("stopping because rank {} of {} failed: {}", root, n, msg);
}

Status AgreeOnIdentity(Comm* comm, uint64_t id, const std::string& description, const std::string& what) {
  const int n = comm->size();
  if (n == 1) return OkStatus();
  struct Entry {
    uint64_t id;
    char desc[160];
  };
  Entry e{};
  e.id = id;
  std::memcpy(e.desc, description.data(), std::min(description.size(), sizeof(e.desc) - 1));
  std::vector<Entry> all(static_cast<size_t>(n));
  comm->AllGatherBytes(&e, sizeof(e), all.data());
  for (int r = 1; r < n; ++r) {
    if (all[r].id != all[0].id) {
      return Errorf("the ranks disagree on {}: rank 0 has {} (fingerprint {:016x}), rank {} has {} (fingerprint {:016x}); "
                    "give every rank the same one", what, all[0].desc, all[0].id, r, all[r].desc, all[r].id);
    }
  }
  return OkStatus();
}

void Fingerprint::Add(const void* data, size_t bytes) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < bytes; ++i) {
    h_ ^= p[i];
    h_ *= 1099511628211ull;
  }
}

}  // namespace lowbit

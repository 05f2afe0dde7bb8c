// Agreement between ranks before they rely on each other: whether every rank succeeded at a step
// (so that one rank's error stops all of them at the same point, each with one line, instead of
// leaving the others waiting in a collective), and whether every rank holds the same thing (the
// same model). Both are collective: every rank calls them at the same point.
#pragma once

#include <cstdint>
#include <string>

#include "lowbit/base/status.h"
#include "lowbit/parallel/comm.h"

namespace lowbit {

// On a rank whose `mine` is an error: `mine`. On the others: an error naming the lowest failed rank
// and its message, or ok when no rank failed.
Status AgreeOnStatus(Comm* comm, const Status& mine);

// Ok when every rank passes the same `id`; otherwise an error naming `what`, and the first rank whose
// id differs from rank 0's with both descriptions (`description` is cut to 160 bytes).
Status AgreeOnIdentity(Comm* comm, uint64_t id, const std::string& description, const std::string& what);

// 64-bit FNV-1a, to fingerprint what the ranks must agree on.
class Fingerprint {
 public:
  void Add(const void* data, size_t bytes);
  void Add(const std::string& s) {
    Add(s.data(), s.size());
    Add(s.size());
  }
  void Add(uint64_t v) { Add(&v, sizeof(v)); }
  uint64_t value() const { return h_; }

 private:
  uint64_t h_ = 1469598103934665603ull;
};

}  // namespace lowbit

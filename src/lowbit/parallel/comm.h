// Communicators for tensor parallelism, and shard plans (how a dimension splits over ranks).
//
// Every forward pass goes through a Comm: column-parallel layers need nothing from it, row-parallel
// layers sum their partial outputs with AllReduceSum. LocalComm is the one-rank communicator every
// build has (all operations are no-ops or copies); ThreadComm runs several ranks as threads of one
// process (tests check that a sharded forward equals the unsharded one); an MPI communicator plugs
// in behind the same interface.
#pragma once

#include <barrier>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "lowbit/base/status.h"

namespace lowbit {

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // data[0..n) := sum over ranks of data[0..n), on every rank.
  virtual void AllReduceSum(float* data, int64_t n) = 0;
  // out[r * n + i] := in[i] of rank r, on every rank.
  virtual void AllGather(const float* in, int64_t n, float* out) = 0;
  // bytes of `data` on rank `root` copied to every rank.
  virtual void Broadcast(void* data, size_t bytes, int root) = 0;
};

class LocalComm final : public Comm {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void AllReduceSum(float*, int64_t) override {}
  void AllGather(const float* in, int64_t n, float* out) override;
  void Broadcast(void*, size_t, int) override {}
};

// N ranks as N threads sharing memory. Create one group, hand rank(i) to thread i; every rank
// must make the same sequence of calls (as with MPI).
class ThreadCommGroup {
 public:
  explicit ThreadCommGroup(int size);
  ~ThreadCommGroup();
  Comm* rank(int r);

 private:
  class Rank;
  friend class Rank;
  int size_;
  std::barrier<> barrier_;
  std::vector<const void*> slots_;
  std::vector<std::unique_ptr<Rank>> ranks_;
};

// A contiguous part [begin, begin + count) of a dimension.
struct ShardRange {
  int64_t begin = 0, count = 0;
};

// Splits n into `size` parts whose boundaries fall on multiples of `unit` (a block size, a head
// width), as evenly as possible; errors when n is not a multiple of unit or there are fewer units
// than ranks.
Expected<ShardRange> SplitDim(int64_t n, int64_t unit, int rank, int size);

}  // namespace lowbit

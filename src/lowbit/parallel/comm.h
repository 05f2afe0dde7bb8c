// Communicators for tensor parallelism, and shard plans (how a dimension splits over ranks).
//
// Every forward pass goes through a Comm: column-parallel layers need nothing from it, row-parallel
// layers sum their partial outputs with AllReduceSum, a classifier split by vocabulary rows gathers
// the logits with AllGatherV. LocalComm is the one-rank communicator every build has (all operations
// are no-ops or copies); ThreadComm runs several ranks as threads of one process (tests check that a
// sharded forward equals the unsharded one); MpiComm (parallel/mpi_comm.h, built when MPI is found)
// is one rank per process, across processes and machines. ReducedPrecisionComm wraps any of them
// and sends the all-reduce's vectors in bf16 or 8-bit blocks.
//
// Every rank must make the same sequence of collective calls with the same sizes (as with MPI).
// Send/Recv are matched in order per (source, destination) pair.
#pragma once

#include <barrier>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <string>
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
  // out := rank 0's counts[0] floats, then rank 1's counts[1], ...; `in` holds counts[rank()].
  virtual void AllGatherV(const float* in, std::span<const int64_t> counts, float* out) = 0;
  // out[r * bytes ..] := the `bytes` bytes of rank r, on every rank (small messages: status, hashes).
  virtual void AllGatherBytes(const void* in, size_t bytes, void* out) = 0;
  // bytes of `data` on rank `root` copied to every rank.
  virtual void Broadcast(void* data, size_t bytes, int root) = 0;
  // A broadcast the other ranks may wait for without limit (an idle server's ranks waiting for the
  // next step): no watchdog, and a waiting rank sleeps between polls instead of spinning on a core.
  // The same collective as Broadcast for ordering; by default it is Broadcast.
  virtual void WaitBroadcast(void* data, size_t bytes, int root) { Broadcast(data, bytes, root); }
  // Point-to-point (rank 0 streaming weights to the others).
  virtual void Send(const void* data, size_t bytes, int dest) = 0;
  virtual void Recv(void* data, size_t bytes, int source) = 0;
  // What the communicator is, for reports ("local", "threads", "mpi (vader)").
  virtual std::string Describe() const = 0;
};

class LocalComm final : public Comm {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void AllReduceSum(float*, int64_t) override {}
  void AllGather(const float* in, int64_t n, float* out) override;
  void AllGatherV(const float* in, std::span<const int64_t> counts, float* out) override;
  void AllGatherBytes(const void* in, size_t bytes, void* out) override;
  void Broadcast(void*, size_t, int) override {}
  void Send(const void*, size_t, int) override;
  void Recv(void*, size_t, int) override;
  std::string Describe() const override { return "local"; }
};

// N ranks as N threads sharing memory. Create one group, hand rank(i) to thread i.
class ThreadCommGroup {
 public:
  explicit ThreadCommGroup(int size);
  ~ThreadCommGroup();
  Comm* rank(int r);

 private:
  class Rank;
  friend class Rank;
  // Bytes in flight from one rank to another (Send/Recv).
  struct Mailbox {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::vector<uint8_t>> messages;
  };
  int size_;
  std::barrier<> barrier_;
  std::vector<const void*> slots_;
  std::vector<std::unique_ptr<Rank>> ranks_;
  std::vector<std::unique_ptr<Mailbox>> mail_;  // [source * size + dest]
};

// How the all-reduce's vectors travel: as float32 (the communicator's own all-reduce), or encoded
// in bf16 or in blocks of 32 int8 values with one float scale (8.25 bits a value, distributed-llama's
// Q80 idea). Encoded vectors are all-gathered and every rank decodes and sums them in rank order, so
// all ranks hold the same bits.
enum class ReducePrecision { kF32, kBF16, kQ8 };
const char* ReducePrecisionName(ReducePrecision p);
bool ParseReducePrecision(const std::string& s, ReducePrecision* p);

class ReducedPrecisionComm final : public Comm {
 public:
  ReducedPrecisionComm(Comm* inner, ReducePrecision p) : inner_(inner), p_(p) {}
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  void AllReduceSum(float* data, int64_t n) override;
  void AllGather(const float* in, int64_t n, float* out) override { inner_->AllGather(in, n, out); }
  void AllGatherV(const float* in, std::span<const int64_t> counts, float* out) override { inner_->AllGatherV(in, counts, out); }
  void AllGatherBytes(const void* in, size_t bytes, void* out) override { inner_->AllGatherBytes(in, bytes, out); }
  void Broadcast(void* data, size_t bytes, int root) override { inner_->Broadcast(data, bytes, root); }
  void WaitBroadcast(void* data, size_t bytes, int root) override { inner_->WaitBroadcast(data, bytes, root); }
  void Send(const void* data, size_t bytes, int dest) override { inner_->Send(data, bytes, dest); }
  void Recv(void* data, size_t bytes, int source) override { inner_->Recv(data, bytes, source); }
  std::string Describe() const override;

 private:
  Comm* inner_;
  ReducePrecision p_;
  std::vector<uint8_t> mine_, all_;  // encoded vectors; grow once
};

// Encoded size and codecs of the reduced-precision all-reduce (exposed for tests and benchmarks).
size_t EncodedBytes(ReducePrecision p, int64_t n);
void EncodeVector(ReducePrecision p, const float* x, int64_t n, uint8_t* out);
// out[i] += decoded value i.
void AddDecoded(ReducePrecision p, const uint8_t* in, int64_t n, float* out);

// A contiguous part [begin, begin + count) of a dimension.
struct ShardRange {
  int64_t begin = 0, count = 0;
};

// Splits n into `size` parts whose boundaries fall on multiples of `unit` (a block size, a head
// width), as evenly as possible; errors when n is not a multiple of unit or there are fewer units
// than ranks.
Expected<ShardRange> SplitDim(int64_t n, int64_t unit, int rank, int size);

// As SplitDim, but any number of ranks: with fewer units than ranks some parts are empty. The
// parts that get one unit more than others are the last ones, or the first ones when
// `extra_first` (so that two dimensions split unevenly load different ranks).
Expected<ShardRange> SplitUnits(int64_t n, int64_t unit, int rank, int size, bool extra_first = false);

}  // namespace lowbit

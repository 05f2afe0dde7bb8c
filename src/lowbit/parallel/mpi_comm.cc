#include "lowbit/parallel/mpi_comm.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "lowbit/base/check.h"

#ifdef LOWBIT_HAVE_MPI
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace lowbit {

bool StartedByMpiLauncher() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"}) {
    if (std::getenv(v) != nullptr) return true;
  }
  return false;
}

#ifndef LOWBIT_HAVE_MPI

bool MpiBuilt() { return false; }

Expected<std::unique_ptr<Comm>> CreateMpiComm(const MpiOptions&) {
  return Errorf("started by an MPI launcher, but this lowbit was built without MPI; install libopenmpi-dev and "
                "openmpi-bin (scripts/install-deps.sh) and rebuild");
}

#else

bool MpiBuilt() { return true; }

namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Calls on_timeout with one line when an operation has waited longer than the timeout. Arm() and
// Disarm() are two relaxed stores; the thread looks once a second (or sooner for short timeouts).
class Watchdog {
 public:
  Watchdog(int rank, int size, double timeout_s, std::function<void(const std::string&)> on_timeout)
      : rank_(rank), size_(size), timeout_ns_(static_cast<int64_t>(timeout_s * 1e9)), on_timeout_(std::move(on_timeout)) {
    if (on_timeout_) thread_ = std::thread([this] { Loop(); });
  }
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  void Arm(const char* what) {
    what_.store(what, std::memory_order_relaxed);
    since_.store(NowNs(), std::memory_order_relaxed);
  }
  void Disarm() { since_.store(0, std::memory_order_relaxed); }

 private:
  void Loop() {
    const auto period = std::chrono::nanoseconds(std::clamp<int64_t>(timeout_ns_ / 4, 10'000'000, 1'000'000'000));
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, period, [this] { return stop_; })) {
      const int64_t since = since_.load(std::memory_order_relaxed);
      if (since != 0 && NowNs() - since > timeout_ns_) {
        on_timeout_(fmt::format("rank {} of {}: waited {:.0f} s in {} for the other ranks (one has stopped or is stuck); "
                                "exiting (LOWBIT_TP_TIMEOUT sets the limit)", rank_, size_, static_cast<double>(timeout_ns_) / 1e9,
                                what_.load(std::memory_order_relaxed)));
        return;
      }
    }
  }
  int rank_, size_;
  int64_t timeout_ns_;
  std::function<void(const std::string&)> on_timeout_;
  std::atomic<int64_t> since_{0};
  std::atomic<const char*> what_{""};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// Time spent in each kind of operation, printed by every rank at exit when LOWBIT_TP_PROFILE=1:
// what a decode step across machines pays for its all-reduces and gathers, to set beside the
// compute (`lowbit plan`'s model). Two clock reads per operation.
struct OpTotals {
  int64_t calls = 0;
  int64_t ns = 0;
  int64_t max_ns = 0;
  int64_t bytes = 0;
};
enum Op { kOpAllReduce, kOpAllGather, kOpStatus, kOpBroadcast, kOpWaitBroadcast, kOpSendRecv, kOpCount };
constexpr const char* kOpNames[kOpCount] = {"all-reduce", "all-gather", "status exchange", "broadcast", "polled bcast", "send/recv"};

// Arms the watchdog for one operation (what == nullptr: a wait that may last, not armed) and adds
// its time to totals when profiling.
class Armed {
 public:
  Armed(Watchdog* w, const char* what, OpTotals* totals = nullptr, int64_t bytes = 0)
      : w_(what != nullptr ? w : nullptr), totals_(totals), start_(totals != nullptr ? NowNs() : 0) {
    if (w_ != nullptr) w_->Arm(what);
    if (totals_ != nullptr) totals_->bytes += bytes;
  }
  ~Armed() {
    if (w_ != nullptr) w_->Disarm();
    if (totals_ != nullptr) {
      const int64_t t = NowNs() - start_;
      ++totals_->calls;
      totals_->ns += t;
      totals_->max_ns = std::max(totals_->max_ns, t);
    }
  }
  Armed(const Armed&) = delete;
  Armed& operator=(const Armed&) = delete;

 private:
  Watchdog* w_;
  OpTotals* totals_;
  int64_t start_;
};

constexpr size_t kMaxChunk = size_t{1} << 30;  // MPI counts are int

class MpiComm final : public Comm {
 public:
  MpiComm(int rank, int size, double timeout_s, std::function<void(const std::string&)> on_timeout)
      : rank_(rank), size_(size), profile_(ProfileFromEnv()), start_ns_(NowNs()), watchdog_(rank, size, timeout_s, std::move(on_timeout)) {}
  ~MpiComm() override {
    if (profile_) PrintProfile();
    MPI_Finalize();
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void AllReduceSum(float* data, int64_t n) override {
    Armed a(&watchdog_, "an all-reduce", T(kOpAllReduce), n * 4);
    for (int64_t done = 0; done < n;) {
      const int count = static_cast<int>(std::min<int64_t>(n - done, kMaxChunk / 4));
      MPI_Allreduce(MPI_IN_PLACE, data + done, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      done += count;
    }
  }

  void AllGather(const float* in, int64_t n, float* out) override {
    Armed a(&watchdog_, "an all-gather", T(kOpAllGather), n * size_ * 4);
    LOWBIT_CHECK(n * size_ <= INT_MAX);
    MPI_Allgather(in, static_cast<int>(n), MPI_FLOAT, out, static_cast<int>(n), MPI_FLOAT, MPI_COMM_WORLD);
  }

  void AllGatherV(const float* in, std::span<const int64_t> counts, float* out) override {
    LOWBIT_CHECK(static_cast<int>(counts.size()) == size_);
    counts_.resize(static_cast<size_t>(size_));
    displs_.resize(static_cast<size_t>(size_));
    int64_t at = 0;
    for (int r = 0; r < size_; ++r) {
      LOWBIT_CHECK(at + counts[r] <= INT_MAX);
      counts_[r] = static_cast<int>(counts[r]);
      displs_[r] = static_cast<int>(at);
      at += counts[r];
    }
    Armed a(&watchdog_, "an all-gather", T(kOpAllGather), at * 4);
    MPI_Allgatherv(in, counts_[rank_], MPI_FLOAT, out, counts_.data(), displs_.data(), MPI_FLOAT, MPI_COMM_WORLD);
  }

  void AllGatherBytes(const void* in, size_t bytes, void* out) override {
    Armed a(&watchdog_, "an exchange of status", T(kOpStatus), static_cast<int64_t>(bytes) * size_);
    LOWBIT_CHECK(bytes * static_cast<size_t>(size_) <= INT_MAX);
    MPI_Allgather(in, static_cast<int>(bytes), MPI_BYTE, out, static_cast<int>(bytes), MPI_BYTE, MPI_COMM_WORLD);
  }

  void Broadcast(void* data, size_t bytes, int root) override {
    Armed a(&watchdog_, "a broadcast", T(kOpBroadcast), static_cast<int64_t>(bytes));
    auto* p = static_cast<uint8_t*>(data);
    for (size_t done = 0; done < bytes;) {
      const int count = static_cast<int>(std::min(bytes - done, kMaxChunk));
      MPI_Bcast(p + done, count, MPI_BYTE, root, MPI_COMM_WORLD);
      done += static_cast<size_t>(count);
    }
  }

  // MPI_Ibcast polled with MPI_Test: at once for the first 200 us (a step follows the previous one
  // at once while requests run), then with sleeps growing to 1 ms, and 10 ms after a second of
  // waiting, so that an idle rank uses next to no CPU (~0.1% of a core).
  void WaitBroadcast(void* data, size_t bytes, int root) override {
    LOWBIT_CHECK(bytes <= kMaxChunk);
    MPI_Request req;
    // Profiled apart from the others: its time includes rank 0's own work (sampling, or an idle server).
    Armed a(&watchdog_, nullptr, T(kOpWaitBroadcast), static_cast<int64_t>(bytes));
    MPI_Ibcast(data, static_cast<int>(bytes), MPI_BYTE, root, MPI_COMM_WORLD, &req);
    const auto start = std::chrono::steady_clock::now();
    auto nap = std::chrono::microseconds(20);
    for (int done = 0;;) {
      MPI_Test(&req, &done, MPI_STATUS_IGNORE);
      if (done) return;
      if (std::chrono::steady_clock::now() - start < std::chrono::microseconds(200)) continue;
      std::this_thread::sleep_for(nap);
      const bool long_idle = std::chrono::steady_clock::now() - start > std::chrono::seconds(1);
      nap = std::min<std::chrono::microseconds>(nap * 2, long_idle ? std::chrono::milliseconds(10) : std::chrono::milliseconds(1));
    }
  }

  void Send(const void* data, size_t bytes, int dest) override {
    Armed a(&watchdog_, "a send", T(kOpSendRecv), static_cast<int64_t>(bytes));
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t done = 0; done < bytes;) {
      const int count = static_cast<int>(std::min(bytes - done, kMaxChunk));
      MPI_Send(p + done, count, MPI_BYTE, dest, kTag, MPI_COMM_WORLD);
      done += static_cast<size_t>(count);
    }
  }

  void Recv(void* data, size_t bytes, int source) override {
    Armed a(&watchdog_, "a receive", T(kOpSendRecv), static_cast<int64_t>(bytes));
    auto* p = static_cast<uint8_t*>(data);
    for (size_t done = 0; done < bytes;) {
      const int count = static_cast<int>(std::min(bytes - done, kMaxChunk));
      MPI_Recv(p + done, count, MPI_BYTE, source, kTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      done += static_cast<size_t>(count);
    }
  }

  std::string Describe() const override {
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(version, &len);
    std::string v(version, static_cast<size_t>(len));
    if (const size_t comma = v.find(','); comma != std::string::npos) v.resize(comma);
    return "mpi (" + v + ")";
  }

 private:
  static bool ProfileFromEnv() {
    const char* v = std::getenv("LOWBIT_TP_PROFILE");
    return v != nullptr && std::string(v) == "1";
  }
  OpTotals* T(Op op) { return profile_ ? &totals_[op] : nullptr; }
  // One line per kind of operation, to stderr, so that stdout keeps rank 0's output alone.
  void PrintProfile() const {
    int64_t in_comm = 0;
    for (const OpTotals& t : totals_) in_comm += t.ns;
    const int64_t wall = NowNs() - start_ns_;
    std::fprintf(stderr, "lowbit tp profile: rank %d of %d: %.3f ms from MPI_Init, %.3f ms of it in the operations below, %.3f ms outside them\n",
                 rank_, size_, static_cast<double>(wall) / 1e6, static_cast<double>(in_comm) / 1e6, static_cast<double>(wall - in_comm) / 1e6);
    for (int op = 0; op < kOpCount; ++op) {
      const OpTotals& t = totals_[op];
      if (t.calls == 0) continue;
      std::fprintf(stderr, "lowbit tp profile: rank %d of %d: %-15s %8lld calls %10.3f ms  mean %8.2f us  max %9.1f us  %.1f KiB/call\n",
                   rank_, size_, kOpNames[op], static_cast<long long>(t.calls), static_cast<double>(t.ns) / 1e6,
                   static_cast<double>(t.ns) / 1e3 / static_cast<double>(t.calls), static_cast<double>(t.max_ns) / 1e3,
                   static_cast<double>(t.bytes) / 1024.0 / static_cast<double>(t.calls));
    }
  }

  static constexpr int kTag = 21;
  int rank_, size_;
  bool profile_;
  int64_t start_ns_;
  std::array<OpTotals, kOpCount> totals_{};
  Watchdog watchdog_;
  std::vector<int> counts_, displs_;
};

double TimeoutFromEnv(double fallback) {
  const char* v = std::getenv("LOWBIT_TP_TIMEOUT");
  if (v == nullptr) return fallback;
  char* end = nullptr;
  const double t = std::strtod(v, &end);
  return end != v && t > 0 ? t : fallback;
}

// Open MPI settings that make the all-reduce of a decode step cheaper, applied before MPI_Init
// unless the user set them (or LOWBIT_MPI_DEFAULTS=1 keeps Open MPI's defaults). The shared-memory
// transport sends messages above its eager limit (4 KiB by default) with a rendezvous and a
// cross-memory copy (process_vm_readv): a 2048-float all-reduce (TinyLlama's 8 KiB) took ~9-10 us
// that way and ~1-2 us sent eagerly on this machine (docs/PERFORMANCE.md, "Tensor parallelism").
// 64 KiB covers one token's vector up to 16384 floats.
void TuneOpenMpi() {
  if (const char* v = std::getenv("LOWBIT_MPI_DEFAULTS"); v != nullptr && std::string(v) == "1") return;
  ::setenv("OMPI_MCA_btl_vader_eager_limit", "65536", /*overwrite=*/0);
  ::setenv("OMPI_MCA_btl_vader_max_send_size", "65536", /*overwrite=*/0);
}

}  // namespace

Expected<std::unique_ptr<Comm>> CreateMpiComm(const MpiOptions& o) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return Errorf("MPI is already initialized in this process");
  TuneOpenMpi();
  int provided = 0;
  if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
    return Errorf("MPI_Init failed; is this process started by mpirun?");
  }
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return std::unique_ptr<Comm>(std::make_unique<MpiComm>(rank, size, TimeoutFromEnv(o.timeout_s), o.on_timeout));
}

#endif

}  // namespace lowbit

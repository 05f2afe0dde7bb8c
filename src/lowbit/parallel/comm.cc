#include "lowbit/parallel/comm.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "lowbit/base/check.h"
#include "lowbit/numeric/half.h"

namespace lowbit {

void LocalComm::AllGather(const float* in, int64_t n, float* out) {
  if (out != in) std::memmove(out, in, static_cast<size_t>(n) * sizeof(float));
}

void LocalComm::AllGatherV(const float* in, std::span<const int64_t> counts, float* out) {
  LOWBIT_CHECK(counts.size() == 1);
  AllGather(in, counts[0], out);
}

void LocalComm::AllGatherBytes(const void* in, size_t bytes, void* out) {
  if (out != in) std::memmove(out, in, bytes);
}

void LocalComm::Send(const void*, size_t, int) { LOWBIT_CHECK_MSG(false, "a one-rank communicator has no one to send to"); }
void LocalComm::Recv(void*, size_t, int) { LOWBIT_CHECK_MSG(false, "a one-rank communicator has no one to receive from"); }

class ThreadCommGroup::Rank final : public Comm {
 public:
  Rank(ThreadCommGroup* g, int r) : g_(g), r_(r) {}
  int rank() const override { return r_; }
  int size() const override { return g_->size_; }

  void AllReduceSum(float* data, int64_t n) override {
    // Every rank publishes its buffer; each sums a slice of all buffers (in rank order) into a
    // private copy, then writes the slice back everywhere once all have read.
    g_->slots_[r_] = data;
    g_->barrier_.arrive_and_wait();
    const int s = g_->size_;
    const int64_t begin = n * r_ / s, end = n * (r_ + 1) / s;
    std::vector<float> sum(static_cast<size_t>(end - begin), 0.0f);
    for (int q = 0; q < s; ++q) {
      const float* src = static_cast<const float*>(g_->slots_[q]);
      for (int64_t i = begin; i < end; ++i) sum[i - begin] += src[i];
    }
    g_->barrier_.arrive_and_wait();
    for (int q = 0; q < s; ++q) {
      float* dst = static_cast<float*>(const_cast<void*>(g_->slots_[q]));
      std::memcpy(dst + begin, sum.data(), sum.size() * sizeof(float));
    }
    g_->barrier_.arrive_and_wait();
  }

  void AllGather(const float* in, int64_t n, float* out) override {
    std::vector<int64_t> counts(static_cast<size_t>(g_->size_), n);
    AllGatherV(in, counts, out);
  }

  void AllGatherV(const float* in, std::span<const int64_t> counts, float* out) override {
    LOWBIT_CHECK(static_cast<int>(counts.size()) == g_->size_);
    g_->slots_[r_] = in;
    g_->barrier_.arrive_and_wait();
    int64_t at = 0;
    for (int q = 0; q < g_->size_; ++q) {
      if (out + at != g_->slots_[q]) std::memcpy(out + at, g_->slots_[q], static_cast<size_t>(counts[q]) * sizeof(float));
      at += counts[q];
    }
    g_->barrier_.arrive_and_wait();
  }

  void AllGatherBytes(const void* in, size_t bytes, void* out) override {
    g_->slots_[r_] = in;
    g_->barrier_.arrive_and_wait();
    for (int q = 0; q < g_->size_; ++q) std::memcpy(static_cast<uint8_t*>(out) + q * bytes, g_->slots_[q], bytes);
    g_->barrier_.arrive_and_wait();
  }

  void Broadcast(void* data, size_t bytes, int root) override {
    if (r_ == root) g_->slots_[0] = data;
    g_->barrier_.arrive_and_wait();
    if (r_ != root) std::memcpy(data, g_->slots_[0], bytes);
    g_->barrier_.arrive_and_wait();
  }

  void Send(const void* data, size_t bytes, int dest) override {
    Mailbox& m = *g_->mail_[static_cast<size_t>(r_ * g_->size_ + dest)];
    const auto* p = static_cast<const uint8_t*>(data);
    std::lock_guard<std::mutex> lock(m.mu);
    m.messages.emplace_back(p, p + bytes);
    m.cv.notify_all();
  }

  void Recv(void* data, size_t bytes, int source) override {
    Mailbox& m = *g_->mail_[static_cast<size_t>(source * g_->size_ + r_)];
    std::unique_lock<std::mutex> lock(m.mu);
    m.cv.wait(lock, [&] { return !m.messages.empty(); });
    LOWBIT_CHECK_MSG(m.messages.front().size() == bytes, "rank {} expected {} bytes from rank {}, got {}", r_, bytes, source,
                     m.messages.front().size());
    std::memcpy(data, m.messages.front().data(), bytes);
    m.messages.pop_front();
  }

  std::string Describe() const override { return "threads"; }

 private:
  ThreadCommGroup* g_;
  int r_;
};

ThreadCommGroup::ThreadCommGroup(int size) : size_(size), barrier_(size), slots_(static_cast<size_t>(size)) {
  LOWBIT_CHECK(size >= 1);
  for (int r = 0; r < size; ++r) ranks_.push_back(std::make_unique<Rank>(this, r));
  for (int i = 0; i < size * size; ++i) mail_.push_back(std::make_unique<Mailbox>());
}
ThreadCommGroup::~ThreadCommGroup() = default;
Comm* ThreadCommGroup::rank(int r) { return ranks_.at(static_cast<size_t>(r)).get(); }

// ---- reduced-precision all-reduce ----

namespace {

constexpr int64_t kQ8Block = 32;
constexpr size_t kQ8BlockBytes = 2 + kQ8Block;  // fp16 scale, 32 codes

}  // namespace

const char* ReducePrecisionName(ReducePrecision p) {
  switch (p) {
    case ReducePrecision::kF32: return "f32";
    case ReducePrecision::kBF16: return "bf16";
    case ReducePrecision::kQ8: return "q8";
  }
  return "?";
}

bool ParseReducePrecision(const std::string& s, ReducePrecision* p) {
  for (ReducePrecision q : {ReducePrecision::kF32, ReducePrecision::kBF16, ReducePrecision::kQ8}) {
    if (s == ReducePrecisionName(q)) {
      *p = q;
      return true;
    }
  }
  return false;
}

size_t EncodedBytes(ReducePrecision p, int64_t n) {
  switch (p) {
    case ReducePrecision::kF32: return static_cast<size_t>(n) * 4;
    case ReducePrecision::kBF16: return static_cast<size_t>(n) * 2;
    case ReducePrecision::kQ8: return static_cast<size_t>((n + kQ8Block - 1) / kQ8Block) * kQ8BlockBytes;
  }
  return 0;
}

void EncodeVector(ReducePrecision p, const float* x, int64_t n, uint8_t* out) {
  if (p == ReducePrecision::kF32) {
    std::memcpy(out, x, static_cast<size_t>(n) * 4);
  } else if (p == ReducePrecision::kBF16) {
    for (int64_t i = 0; i < n; ++i) {
      const uint16_t b = Fp32ToBf16(x[i]);
      std::memcpy(out + 2 * i, &b, 2);
    }
  } else {
    // Q8_0's rounding: d = max|x| / 127 stored as fp16, q = round(x / d).
    for (int64_t b0 = 0; b0 < n; b0 += kQ8Block) {
      const int64_t len = std::min(kQ8Block, n - b0);
      float amax = 0;
      for (int64_t i = 0; i < len; ++i) amax = std::max(amax, std::fabs(x[b0 + i]));
      const float d = amax / 127.0f;
      const float id = d > 0 ? 1.0f / d : 0.0f;
      uint8_t* blk = out + (b0 / kQ8Block) * kQ8BlockBytes;
      const uint16_t dh = Fp32ToFp16(d);
      std::memcpy(blk, &dh, 2);
      for (int64_t i = 0; i < kQ8Block; ++i) {
        const float v = i < len ? x[b0 + i] * id : 0.0f;
        blk[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(std::lround(std::clamp(v, -127.0f, 127.0f))));
      }
    }
  }
}

void AddDecoded(ReducePrecision p, const uint8_t* in, int64_t n, float* out) {
  if (p == ReducePrecision::kF32) {
    for (int64_t i = 0; i < n; ++i) {
      float v;
      std::memcpy(&v, in + 4 * i, 4);
      out[i] += v;
    }
  } else if (p == ReducePrecision::kBF16) {
    for (int64_t i = 0; i < n; ++i) {
      uint16_t b;
      std::memcpy(&b, in + 2 * i, 2);
      out[i] += Bf16ToFp32(b);
    }
  } else {
    for (int64_t b0 = 0; b0 < n; b0 += kQ8Block) {
      const uint8_t* blk = in + (b0 / kQ8Block) * kQ8BlockBytes;
      uint16_t dh;
      std::memcpy(&dh, blk, 2);
      const float d = Fp16ToFp32(dh);
      const int64_t len = std::min(kQ8Block, n - b0);
      for (int64_t i = 0; i < len; ++i) out[b0 + i] += d * static_cast<float>(static_cast<int8_t>(blk[2 + i]));
    }
  }
}

void ReducedPrecisionComm::AllReduceSum(float* data, int64_t n) {
  if (p_ == ReducePrecision::kF32) {
    inner_->AllReduceSum(data, n);
    return;
  }
  const size_t bytes = EncodedBytes(p_, n);
  if (mine_.size() < bytes) mine_.resize(bytes);
  if (all_.size() < bytes * static_cast<size_t>(size())) all_.resize(bytes * static_cast<size_t>(size()));
  EncodeVector(p_, data, n, mine_.data());
  inner_->AllGatherBytes(mine_.data(), bytes, all_.data());
  std::fill(data, data + n, 0.0f);
  for (int q = 0; q < size(); ++q) AddDecoded(p_, all_.data() + static_cast<size_t>(q) * bytes, n, data);
}

std::string ReducedPrecisionComm::Describe() const {
  return inner_->Describe() + ", all-reduce in " + ReducePrecisionName(p_);
}

// ---- shard plans ----

Expected<ShardRange> SplitDim(int64_t n, int64_t unit, int rank, int size) {
  if (size < 1 || rank < 0 || rank >= size) return Errorf("rank {} of {} is invalid", rank, size);
  if (unit <= 0 || n % unit != 0) return Errorf("dimension {} is not a multiple of {}", n, unit);
  const int64_t units = n / unit;
  if (units < size) return Errorf("dimension {} has {} parts of {}, fewer than {} ranks", n, units, unit, size);
  const int64_t u0 = units * rank / size, u1 = units * (rank + 1) / size;
  return ShardRange{u0 * unit, (u1 - u0) * unit};
}

Expected<ShardRange> SplitUnits(int64_t n, int64_t unit, int rank, int size, bool extra_first) {
  if (size < 1 || rank < 0 || rank >= size) return Errorf("rank {} of {} is invalid", rank, size);
  if (unit <= 0 || n % unit != 0) return Errorf("dimension {} is not a multiple of {}", n, unit);
  const int64_t units = n / unit;
  // units * r / size puts the larger parts last; mirrored, first.
  auto edge = [&](int r) { return extra_first ? units - units * (size - r) / size : units * r / size; };
  const int64_t u0 = edge(rank), u1 = edge(rank + 1);
  return ShardRange{u0 * unit, (u1 - u0) * unit};
}

}  // namespace lowbit

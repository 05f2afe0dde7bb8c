// Matrix-vector (decode) and matrix-matrix (prefill) products per weight type and ISA, one thread.
//  - MatVec: a 256 MiB weight matrix (4096 columns), far larger than the caches, against one
//    activation row: GB/s of weights streamed (compare with `lowbit bench`'s measured bandwidth).
//  - QuantizeActivations: one row of 4096 activations converted for a weight type's integer dot
//    (Q8_0, Q8_1, Q8_K blocks): GB/s of floats read. Decode does this on one thread between products.
//  - MatMul: 2048 x 2048 weights against 128 tokens (weights stay in cache): GFLOP/s, counting a
//    multiply-add as 2 operations.
//  - ReadBandwidth: the memory read rate a decode can hope for, a 256 MiB buffer summed with the
//    kernels' 3 KiB prefetch (the loop of `lowbit bench`'s probe), beside MatVec in the same run.
//  - Attend: one decode token's attention for one K/V head and its 8 query heads (TinyLlama's group,
//    head size 64, the K/V rows of a 4-head cache) over a context of 128 / 512 / 2048 positions, F32
//    and F16 cache: GFLOP/s (scores and weighted sum, 4 x n_pos x 64 x 8 operations).
//  - GemmF32: the training products of a 768 x 256 linear layer over 1024 tokens (stories5M's FFN
//    shape, 4 sequences of 256): forward X W^T, backward dY W and dY^T X, per ISA; GFLOP/s.
// Weights: a 64-row tile quantized from N(0, 0.02) by lowbit's quantizer, repeated (random scales
// would be unrealistic; the speed of a kernel does not depend on the values). The grouped-integer
// types (W4G128 ...), which no quantizer writes, get random codes, zero points and fp16 scales.
// bench/grouped_decode.py runs MatVec of them beside Q4_0 / Q8_0 and the probe and prints fractions.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "lowbit/advise/probe_rows.h"
#include "lowbit/base/aligned_buffer.h"
#include "lowbit/base/thread_pool.h"
#include "lowbit/eval/bandwidth.h"
#include "lowbit/kernels/dot.h"
#include "lowbit/kernels/gemm.h"
#include "lowbit/kernels/matvec.h"
#include "lowbit/numeric/bnb.h"
#include "lowbit/numeric/grouped.h"
#include "lowbit/numeric/half.h"
#include "lowbit/numeric/interleave.h"
#include "lowbit/quant/bnb_quant.h"
#include "lowbit/quant/quantize.h"

namespace lowbit {
namespace {

const GgmlType kTypes[] = {GgmlType::kF32,    GgmlType::kF16,    GgmlType::kBF16,    GgmlType::kQ4_0,  GgmlType::kQ4_1,
                           GgmlType::kQ5_0,   GgmlType::kQ5_1,   GgmlType::kQ8_0,    GgmlType::kQ2_K,  GgmlType::kQ3_K,
                           GgmlType::kQ4_K,   GgmlType::kQ5_K,   GgmlType::kQ6_K,    GgmlType::kIQ4_NL, GgmlType::kIQ4_XS,
                           GgmlType::kW4G32,  GgmlType::kW4G64,  GgmlType::kW4G128,  GgmlType::kW8G32, GgmlType::kW8G64,
                           GgmlType::kW8G128, GgmlType::kI8R256, GgmlType::kNF4G64, GgmlType::kNF4G64x2,
                           GgmlType::kQ4_KX8, GgmlType::kQ5_KX8,  // 24, 25: Q4_K / Q5_K interleaved (AVX-512 table only)
                           GgmlType::kQ4_0X8, GgmlType::kQ4_1X8, GgmlType::kQ5_0X8, GgmlType::kQ5_1X8,
                           GgmlType::kIQ4_NLX8,  // 26-30: the 32-element types interleaved (AVX-512 table only)
                           GgmlType::kQ2_KX8, GgmlType::kQ3_KX8, GgmlType::kIQ4_XSX8,  // 31-33: Q2_K / Q3_K / IQ4_XS interleaved (AVX-512 table only)
                           GgmlType::kQ6_KX8};  // 34: Q6_K interleaved (AVX-512 table only)

// One row of grouped blocks: random codes, zero points in [0, 2^bits] and fp16 scales.
void RandomGroupedRow(GgmlType t, int64_t cols, std::mt19937& rng, uint8_t* out) {
  const int bits = GroupedContainerBits(t);
  std::uniform_int_distribution<int> byte(0, 255), zero(0, 1 << bits);
  std::normal_distribution<float> nd(0.0f, 0.001f);
  const uint64_t bb = TypeInfo(t).block_bytes;
  for (int64_t b = 0; b < cols / GroupedBlockSize(t); ++b, out += bb) {
    const uint16_t d = Fp32ToFp16(nd(rng));
    const auto z = static_cast<int16_t>(zero(rng));
    std::memcpy(out, &d, 2);
    std::memcpy(out + 2, &z, 2);
    for (uint64_t i = 4; i < bb; ++i) out[i] = static_cast<uint8_t>(byte(rng));
  }
}

AlignedBuffer MakeWeights(GgmlType t, int64_t rows, int64_t cols) {
  constexpr int64_t kTile = 64;
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<float> x(kTile * cols);
  for (float& v : x) v = nd(rng);
  const uint64_t rb = *RowBytes(t, static_cast<uint64_t>(cols));
  AlignedBuffer tile(kTile * rb);
  for (int64_t r = 0; r < kTile; ++r) {
    if (IsGroupedType(t)) {
      RandomGroupedRow(t, cols, rng, tile.data() + r * rb);
    } else if (IsBnb4Type(t)) {  // random codes with a plausible scale, as advise's probes make them
      FillProbeRows(t, cols, tile.data() + r * rb, rb);
    } else if (IsInt8RowType(t)) {  // LLM.int8: the row quantizer of quant/bnb_quant.h
      std::vector<int8_t> q(static_cast<size_t>(cols));
      const std::vector<float> scb = QuantizeInt8Rows(x.data() + r * cols, 1, cols, q.data());
      PackInt8Rows(t, q.data(), scb, 1, cols, tile.data() + r * rb);
    } else {
      FromFloatFor(StoredTypeOf(t))(x.data() + r * cols, tile.data() + r * rb, cols, nullptr);
    }
  }
  if (IsInterleaved(t)) InterleaveRows(StoredTypeOf(t), tile.data(), kTile, cols);  // whole groups of 8: the tile repeats
  AlignedBuffer w(static_cast<size_t>(rows) * rb);
  for (int64_t r = 0; r < rows; r += kTile) std::memcpy(w.data() + r * rb, tile.data(), std::min(kTile, rows - r) * rb);
  return w;
}

std::vector<float> Activations(int64_t n) {
  std::mt19937 rng(4);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(n);
  for (float& v : x) v = nd(rng);
  return x;
}

// One activation row times a weight matrix of about `bytes` (4096 columns): 256 MiB streams from
// memory (the decode regime), 512 KiB stays in L2 (the kernel's compute ceiling).
void MatVec(benchmark::State& state, uint64_t bytes, int threads) {
  const GgmlType t = kTypes[state.range(0)];
  const Isa isa = static_cast<Isa>(state.range(1));
  constexpr int64_t kCols = 4096;
  const uint64_t rb = *RowBytes(t, kCols);
  const int64_t rows = std::max<int64_t>(64, static_cast<int64_t>(bytes / rb) / 64 * 64);
  const AlignedBuffer w = MakeWeights(t, rows, kCols);
  const std::vector<float> x = Activations(kCols);
  std::vector<float> y(rows);
  MatMulScratch scratch;
  ThreadPool pool(threads);
  MatMulArgs a{.type = t, .w = w.data(), .rows = rows, .cols = kCols, .x = x.data(), .batch = 1, .y = y.data()};
  for (auto _ : state) {
    MatMul(DotKernelsFor(isa), a, threads > 1 ? &pool : nullptr, &scratch);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * rows * static_cast<int64_t>(rb));
  state.SetLabel(std::string(TypeInfo(t).name) + "/" + std::string(IsaName(isa)));
}

// The read probe of `lowbit bench` (eval/bandwidth.h) over 256 MiB: each pass the faster of a sweep
// with and one without software prefetch. GB/s of the buffer read (two sweeps per iteration).
void ReadBandwidth(benchmark::State& state, int threads) {
  constexpr size_t kBytes = size_t{256} << 20;
  ReadBandwidthProbe probe(threads, kBytes);
  double best = 0;
  for (auto _ : state) best = std::max(best, probe.Pass());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(2 * kBytes));
  state.counters["probe_GBps"] = best;
  state.SetLabel("probe");
}

void BM_ReadBandwidth(benchmark::State& state) { ReadBandwidth(state, 1); }
void BM_ReadBandwidth2T(benchmark::State& state) { ReadBandwidth(state, 2); }

void BM_MatVec(benchmark::State& state) { MatVec(state, uint64_t{256} << 20, 1); }
void BM_MatVec2T(benchmark::State& state) { MatVec(state, uint64_t{256} << 20, 2); }
void BM_MatVecL2(benchmark::State& state) { MatVec(state, uint64_t{512} << 10, 1); }

// A serving step of range(2) tokens (1..8) through the batch-invariant path (MatMulArgs::
// batch_invariant: the rows8 kernel below 8 tokens) on TinyLlama's 2048 x 2048 attention product,
// one thread (the weights, 1.2-2.2 MiB, stay in L2/L3: the compute the server pays per step).
// items/s = tokens per second through this product; compare 1, 2 and 4 tokens.
void BM_MatVecInvariant(benchmark::State& state) {
  const GgmlType t = kTypes[state.range(0)];
  const Isa isa = static_cast<Isa>(state.range(1));
  const int64_t ntok = state.range(2);
  constexpr int64_t kRows = 2048, kCols = 2048;
  const AlignedBuffer w = MakeWeights(t, kRows, kCols);
  const std::vector<float> x = Activations(kCols * ntok);
  std::vector<float> y(kRows * ntok);
  MatMulScratch scratch;
  const bool invariant = state.range(3) != 0;
  MatMulArgs a{.type = t, .w = w.data(), .rows = kRows, .cols = kCols, .x = x.data(), .batch = ntok, .y = y.data(),
               .batch_invariant = invariant};
  for (auto _ : state) {
    MatMul(DotKernelsFor(isa), a, nullptr, &scratch);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * ntok);
  state.SetLabel(std::string(TypeInfo(t).name) + (invariant ? "" : "-plain") + "/" + std::string(IsaName(isa)) + "/" + std::to_string(ntok) + "tok");
}

void BM_QuantizeActivations(benchmark::State& state) {
  const GgmlType t = kTypes[state.range(0)];
  const Isa isa = static_cast<Isa>(state.range(1));
  constexpr int64_t kCols = 4096;
  const std::vector<float> x = Activations(kCols);
  AlignedBuffer act(ActRowBytes(t, kCols));
  for (auto _ : state) {
    QuantizeActivations(DotKernelsFor(isa), t, x.data(), act.data(), kCols);
    benchmark::DoNotOptimize(act.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * kCols * static_cast<int64_t>(sizeof(float)));
  state.SetLabel(std::string(TypeInfo(ActTypeFor(t)).name) + "/" + std::string(IsaName(isa)));
}

void BM_MatMul(benchmark::State& state) {
  const GgmlType t = kTypes[state.range(0)];
  const Isa isa = static_cast<Isa>(state.range(1));
  constexpr int64_t kRows = 2048, kCols = 2048, kBatch = 128;
  const AlignedBuffer w = MakeWeights(t, kRows, kCols);
  const std::vector<float> x = Activations(kCols * kBatch);
  std::vector<float> y(kRows * kBatch);
  MatMulScratch scratch;
  MatMulArgs a{.type = t, .w = w.data(), .rows = kRows, .cols = kCols, .x = x.data(), .batch = kBatch, .y = y.data()};
  for (auto _ : state) {
    MatMul(DotKernelsFor(isa), a, nullptr, &scratch);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * kRows * kCols * kBatch * static_cast<double>(state.iterations()) / 1e9,
                                                 benchmark::Counter::kIsRate);
  state.SetLabel(std::string(TypeInfo(t).name) + "/" + std::string(IsaName(isa)));
}

void BM_GemmF32(benchmark::State& state) {
  const int form = static_cast<int>(state.range(0));
  const Isa isa = static_cast<Isa>(state.range(1));
  constexpr int64_t kT = 1024, kOut = 768, kIn = 256;
  const std::vector<float> x = Activations(kT * kIn), w = Activations(kOut * kIn), dy = Activations(kT * kOut);
  std::vector<float> out(kT * kOut + kOut * kIn + kT * kIn);
  GemmArgs g;
  const char* name = "";
  if (form == 0) {
    g = {.m = kT, .n = kOut, .k = kIn, .a = x.data(), .lda = kIn, .b = w.data(), .ldb = kIn, .b_trans = true, .c = out.data(), .ldc = kOut};
    name = "X W^T";
  } else if (form == 1) {
    g = {.m = kT, .n = kIn, .k = kOut, .a = dy.data(), .lda = kOut, .b = w.data(), .ldb = kIn, .c = out.data(), .ldc = kIn};
    name = "dY W";
  } else {
    g = {.m = kOut, .n = kIn, .k = kT, .a = dy.data(), .lda = kOut, .a_trans = true, .b = x.data(), .ldb = kIn, .c = out.data(),
         .ldc = kIn, .accumulate = true};
    name = "dY^T X";
  }
  const GemmKernel& kr = GemmKernelFor(isa);
  for (auto _ : state) {
    GemmF32(kr, g, nullptr);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * kT * kOut * kIn * static_cast<double>(state.iterations()) / 1e9,
                                                 benchmark::Counter::kIsRate);
  state.SetLabel(std::string(name) + "/" + std::string(IsaName(isa)));
}

void BM_Attend(benchmark::State& state) {
  const Isa isa = static_cast<Isa>(state.range(0));
  const int64_t n_pos = state.range(1);
  const bool f16 = state.range(2) != 0;
  constexpr int64_t kHd = 64, kQ = 8, kWidth = 4 * kHd;  // 4 K/V heads per cache row
  const size_t el = f16 ? 2 : 4;
  const std::vector<float> rows = Activations(n_pos * kWidth), q = Activations(kQ * kHd);
  std::vector<uint8_t> k(rows.size() * el);
  for (size_t i = 0; i < rows.size(); ++i) {
    const float x = rows[i] * 0.1f;
    const uint16_t h = Fp32ToFp16(x);
    std::memcpy(k.data() + el * i, f16 ? static_cast<const void*>(&h) : static_cast<const void*>(&x), el);
  }
  const std::vector<uint8_t> v = k;  // the V rows: the same values
  std::vector<float> att(kQ * n_pos), out(kQ * kHd);
  const AttendFn attend = DotKernelsFor(isa).ForAttend(f16);
  for (auto _ : state) {
    attend(q.data(), kQ, k.data(), v.data(), kWidth * el, n_pos, kHd, 0.125f, att.data(), out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(4.0 * static_cast<double>(n_pos * kHd * kQ) * static_cast<double>(state.iterations()) / 1e9,
                                                 benchmark::Counter::kIsRate);
  state.SetLabel(std::string(f16 ? "F16" : "F32") + " cache/" + std::string(IsaName(isa)));
}

void AttendArgs(benchmark::internal::Benchmark* b) {
  for (Isa isa : SupportedIsas()) {
    for (int n_pos : {128, 512, 2048}) {
      for (int f16 : {0, 1}) b->Args({static_cast<int>(isa), n_pos, f16});
    }
  }
}

void GemmArgsList(benchmark::internal::Benchmark* b) {
  for (Isa isa : SupportedIsas()) {
    for (int form = 0; form < 3; ++form) b->Args({form, static_cast<int>(isa)});
  }
}

// Q4_0, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS, NF4G64x2 and the interleaved types (where the table has them) at 1-16 tokens on every ISA but the reference.
void InvariantArgs(benchmark::internal::Benchmark* b) {
  for (Isa isa : SupportedIsas()) {
    if (isa == Isa::kRef) continue;
    for (int i : {3, 7, 8, 9, 10, 11, 12, 14, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34}) {
      if (DotKernelsFor(isa).ForRows8(kTypes[i]) == nullptr && DotKernelsFor(isa).For(kTypes[i]) == nullptr) continue;
      for (int ntok : {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64}) {
        for (int invariant : {1, 0}) b->Args({i, static_cast<int>(isa), ntok, invariant});
      }
    }
  }
}

void Args(benchmark::internal::Benchmark* b) {
  for (Isa isa : SupportedIsas()) {
    for (int i = 0; i < static_cast<int>(std::size(kTypes)); ++i) {
      if (DotKernelsFor(isa).For(kTypes[i]) != nullptr || DotKernelsFor(isa).ForRows8(kTypes[i]) != nullptr) b->Args({i, static_cast<int>(isa)});
    }
  }
}

// One weight type per activation type: Q4_0 (Q8_0), Q4_1 (Q8_1), Q4_K (Q8_K), NF4G64x2 (int16).
void ActArgs(benchmark::internal::Benchmark* b) {
  for (Isa isa : SupportedIsas()) {
    for (int i : {3, 4, 10, 23}) b->Args({i, static_cast<int>(isa)});
  }
}

BENCHMARK(BM_ReadBandwidth)->Unit(benchmark::kMillisecond)->MinTime(0.5);
BENCHMARK(BM_ReadBandwidth2T)->Unit(benchmark::kMillisecond)->MinTime(0.5);
BENCHMARK(BM_MatVec)->Apply(Args)->Unit(benchmark::kMillisecond)->MinTime(0.5);
BENCHMARK(BM_MatVec2T)->Apply(Args)->Unit(benchmark::kMillisecond)->MinTime(0.5);
BENCHMARK(BM_MatVecL2)->Apply(Args)->Unit(benchmark::kMicrosecond)->MinTime(0.2);
BENCHMARK(BM_MatVecInvariant)->Apply(InvariantArgs)->Unit(benchmark::kMicrosecond)->MinTime(0.2);
BENCHMARK(BM_QuantizeActivations)->Apply(ActArgs)->Unit(benchmark::kMicrosecond)->MinTime(0.2);
BENCHMARK(BM_MatMul)->Apply(Args)->Unit(benchmark::kMillisecond)->MinTime(0.5);
BENCHMARK(BM_Attend)->Apply(AttendArgs)->Unit(benchmark::kMicrosecond)->MinTime(0.2);
BENCHMARK(BM_GemmF32)->Apply(GemmArgsList)->Unit(benchmark::kMillisecond)->MinTime(0.5);

}  // namespace
}  // namespace lowbit

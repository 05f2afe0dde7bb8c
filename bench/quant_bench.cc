// Quantize and dequantize throughput per weight type, one core: MB/s of F32 (input for quantize,
// output for dequantize), and ns per 32 values. Data: N(0, 0.02), the scale of real LLM weights.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "lowbit/numeric/dequant.h"
#include "lowbit/quant/quantize.h"

namespace lowbit {
namespace {

constexpr int64_t kCols = 4096, kRows = 16;

const std::vector<float>& Data() {
  static const std::vector<float> data = [] {
    std::vector<float> v(kCols * kRows);
    std::mt19937 rng(5);
    std::normal_distribution<float> nd(0.0f, 0.02f);
    for (float& x : v) x = nd(rng);
    return v;
  }();
  return data;
}

const GgmlType kTypes[] = {GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_0, GgmlType::kQ5_1, GgmlType::kQ8_0,
                           GgmlType::kQ2_K, GgmlType::kQ3_K, GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K,
                           GgmlType::kIQ4_NL, GgmlType::kIQ4_XS, GgmlType::kTQ1_0, GgmlType::kTQ2_0};

void Report(benchmark::State& state, GgmlType t) {
  const double values = static_cast<double>(state.iterations()) * kCols * kRows;
  state.SetBytesProcessed(static_cast<int64_t>(values * 4));
  state.SetLabel(std::string(TypeInfo(t).name));
  state.counters["ns_per_32"] = benchmark::Counter(values / 32, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_Quantize(benchmark::State& state) {
  const GgmlType t = kTypes[state.range(0)];
  const auto& x = Data();
  const uint64_t row_bytes = *RowBytes(t, kCols);
  std::vector<uint8_t> q(row_bytes * kRows);
  FromFloatFn f = FromFloatFor(t);
  for (auto _ : state) {
    for (int64_t r = 0; r < kRows; ++r) f(x.data() + r * kCols, q.data() + r * row_bytes, kCols, nullptr);
    benchmark::ClobberMemory();
  }
  Report(state, t);
}
BENCHMARK(BM_Quantize)->DenseRange(0, std::size(kTypes) - 1)->Unit(benchmark::kMillisecond);

void BM_Dequantize(benchmark::State& state) {
  const GgmlType t = kTypes[state.range(0)];
  const auto& x = Data();
  const uint64_t row_bytes = *RowBytes(t, kCols);
  std::vector<uint8_t> q(row_bytes * kRows);
  for (int64_t r = 0; r < kRows; ++r) FromFloatFor(t)(x.data() + r * kCols, q.data() + r * row_bytes, kCols, nullptr);
  std::vector<float> y(kCols * kRows);
  ToFloatFn f = ToFloatFor(t);
  for (auto _ : state) {
    f(q.data(), y.data(), kCols * kRows);
    benchmark::ClobberMemory();
  }
  Report(state, t);
}
BENCHMARK(BM_Dequantize)->DenseRange(0, std::size(kTypes) - 1)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace lowbit

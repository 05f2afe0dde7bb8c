// fp16/bf16 array conversion throughput for every ISA table this CPU runs (GB/s of input).
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "lowbit/base/cpu_features.h"
#include "lowbit/numeric/convert.h"

namespace lowbit {
namespace {

constexpr size_t kN = 1 << 16;  // 256 KiB of floats: stays in L2, measures the kernel

template <int kWhich>
void BM_Convert(benchmark::State& state) {
  const auto isa = static_cast<Isa>(state.range(0));
  if (isa > MaxSupportedIsa()) {
    state.SkipWithError("ISA not supported by this CPU");
    return;
  }
  const HalfConvertKernels& k = HalfConvertKernelsFor(isa);
  std::vector<float> f(kN);
  std::vector<uint16_t> h(kN);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (float& x : f) x = nd(rng);
  k.f32_to_f16(f.data(), h.data(), kN);
  size_t in_bytes = 0;
  for (auto _ : state) {
    switch (kWhich) {
      case 0: k.f32_to_f16(f.data(), h.data(), kN); in_bytes = 4; break;
      case 1: k.f16_to_f32(h.data(), f.data(), kN); in_bytes = 2; break;
      case 2: k.f32_to_bf16(f.data(), h.data(), kN); in_bytes = 4; break;
      case 3: k.bf16_to_f32(h.data(), f.data(), kN); in_bytes = 2; break;
    }
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kN * in_bytes));
  state.SetLabel(std::string(IsaName(isa)));
}
BENCHMARK(BM_Convert<0>)->Name("f32_to_f16")->DenseRange(0, 2);
BENCHMARK(BM_Convert<1>)->Name("f16_to_f32")->DenseRange(0, 2);
BENCHMARK(BM_Convert<2>)->Name("f32_to_bf16")->DenseRange(0, 2);
BENCHMARK(BM_Convert<3>)->Name("bf16_to_f32")->DenseRange(0, 2);

}  // namespace
}  // namespace lowbit

// GPTQ / AWQ layer reading and writing (formats/quant_checkpoint.h): a 4096 x 4096 Linear, group 128,
// unpacked from an in-memory safetensors file into IntQuantLinear, and packed back. Reported as
// weights per second; loading a 7B checkpoint unpacks about 6.5e9 of them.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>

#include "lowbit/base/mapped_file.h"
#include "lowbit/formats/quant_checkpoint.h"
#include "lowbit/numeric/half.h"

namespace lowbit {
namespace {

constexpr int64_t kRows = 4096, kCols = 4096, kGroup = 128;

IntQuantLinear MakeLayer(int bits, bool act_order) {
  std::mt19937 rng(1);
  IntQuantLinear q;
  q.bits = bits;
  q.rows = kRows;
  q.cols = kCols;
  q.group_size = kGroup;
  q.codes.resize(kRows * kCols);
  for (auto& c : q.codes) c = static_cast<uint8_t>(rng() & ((1u << bits) - 1));
  q.scales.assign(q.n_groups() * kRows, Fp16ToFp32(Fp32ToFp16(0.01f)));
  q.zeros.resize(q.n_groups() * kRows);
  for (auto& z : q.zeros) z = static_cast<int32_t>(rng() & ((1u << bits) - 1));
  q.g_idx = MonotoneGIdx(kCols, kGroup);
  if (act_order) std::shuffle(q.g_idx.begin(), q.g_idx.end(), rng);
  return q;
}

QuantConfig Config(bool awq, int bits) {
  QuantConfig c;
  c.bits = bits;
  c.group_size = kGroup;
  c.sym = false;
  c.desc_act = !awq;
  if (awq) {
    c.method = QuantMethod::kAwq;
    c.format = CheckpointFormat::kAwqGemm;
  }
  return c;
}

// The layer as safetensors bytes (written once through a temporary file).
std::vector<uint8_t> FileBytes(const IntQuantLinear& q, const QuantConfig& cfg) {
  SafetensorsWriter w;
  if (!AddQuantizedLinear(w, "m", q, cfg).ok()) return {};
  const std::string path = "/tmp/lowbit-quant-bench.safetensors";
  if (!w.Write(path).ok()) return {};
  auto f = MappedFile::Open(path);
  std::vector<uint8_t> bytes(f->bytes().begin(), f->bytes().end());
  std::remove(path.c_str());
  return bytes;
}

void BM_ReadLayer(benchmark::State& state) {
  const bool awq = state.range(0) == 0;
  const int bits = awq ? 4 : static_cast<int>(state.range(0));
  const QuantConfig cfg = Config(awq, bits);
  const auto bytes = FileBytes(MakeLayer(bits, !awq), cfg);
  auto f = SafetensorsFile::Parse(bytes, "bench");
  if (!f.ok()) return state.SkipWithError(f.status().message().c_str());
  for (auto _ : state) {
    auto q = ReadQuantizedLinear(*f, "m", cfg, kRows, kCols);
    if (!q.ok()) return state.SkipWithError(q.status().message().c_str());
    benchmark::DoNotOptimize(q->codes.data());
  }
  state.SetItemsProcessed(state.iterations() * kRows * kCols);
  state.SetLabel(awq ? "awq gemm 4-bit" : fmt::format("gptq {}-bit act-order", bits));
}
BENCHMARK(BM_ReadLayer)->Arg(0)->Arg(2)->Arg(3)->Arg(4)->Arg(8)->Unit(benchmark::kMillisecond);

void BM_WriteLayer(benchmark::State& state) {
  const bool awq = state.range(0) == 0;
  const int bits = awq ? 4 : static_cast<int>(state.range(0));
  const QuantConfig cfg = Config(awq, bits);
  const IntQuantLinear q = MakeLayer(bits, !awq);
  for (auto _ : state) {
    SafetensorsWriter w;
    Status s = AddQuantizedLinear(w, "m", q, cfg);
    if (!s.ok()) return state.SkipWithError(s.message().c_str());
    benchmark::DoNotOptimize(w);
  }
  state.SetItemsProcessed(state.iterations() * kRows * kCols);
  state.SetLabel(awq ? "awq gemm 4-bit" : fmt::format("gptq {}-bit", bits));
}
BENCHMARK(BM_WriteLayer)->Arg(0)->Arg(3)->Arg(4)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace lowbit

// GGUF open time: header, metadata and tensor index of a file with many tensors, no tensor data
// touched. Target (issue 2): under 50 ms for 10,000 tensors.
#include <benchmark/benchmark.h>

#include <cstring>
#include <filesystem>
#include <string>

#include "lowbit/formats/gguf_reader.h"
#include "lowbit/formats/gguf_writer.h"

namespace lowbit {
namespace {

// A GGUF with n_tensors small F32 tensors and a 32,000-token vocabulary in its metadata.
std::string MakeFile(int n_tensors) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("lowbit-bench-" + std::to_string(n_tensors) + ".gguf")).string();
  if (std::filesystem::exists(path)) return path;
  GgufWriter w;
  w.SetKv("general.architecture", GgufValue::String("bench"));
  std::vector<GgufValue> tokens, scores;
  for (int i = 0; i < 32000; ++i) {
    tokens.push_back(GgufValue::String("tok" + std::to_string(i)));
    scores.push_back(GgufValue::F32(-static_cast<float>(i)));
  }
  w.SetKv("tokenizer.ggml.tokens", GgufValue::Array(GgufValueType::kString, std::move(tokens)));
  w.SetKv("tokenizer.ggml.scores", GgufValue::Array(GgufValueType::kF32, std::move(scores)));
  const uint64_t dims[] = {64, 4};
  for (int i = 0; i < n_tensors; ++i) {
    (void)w.AddTensor("blk." + std::to_string(i / 10) + ".t" + std::to_string(i % 10) + ".weight",
                      GgmlType::kF32, dims, [](std::span<uint8_t> o) {
                        std::memset(o.data(), 0, o.size());
                        return OkStatus();
                      });
  }
  if (!w.Write(path).ok()) return {};
  return path;
}

void BM_GgufOpen(benchmark::State& state) {
  const std::string path = MakeFile(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    auto g = GgufFile::Open(path);
    if (!g.ok()) state.SkipWithError(g.status().message().c_str());
    benchmark::DoNotOptimize(g);
  }
  state.counters["tensors"] = static_cast<double>(state.range(0));
}
BENCHMARK(BM_GgufOpen)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace lowbit

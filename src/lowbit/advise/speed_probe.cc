// Measures the kernel speeds the cost model needs (eval/cost_model.h) on this machine, and caches
// them per boot.
//
// Decode stream rate of a weight type: MatMul with one token over a 128 MiB matrix of that type
// (random weights quantized by lowbit's own quantizers, tiled), in memory advised for 2 MiB pages as
// a model file read into memory is; the median of 3 passes. Prefill GEMM rate: MatMul of 512 tokens
// through a 512 x 4096 matrix; the median of 3. Attention: the kernel table's AttendFn on 8 query
// heads over 1024 cached positions of 128 values (in cache: the cost model adds the memory side).
// Hand-off: an empty ParallelFor. A decode step's fixed costs (norms, RoPE, wake-ups, ...): the
// engine's decode of synthetic stories15M-shaped models of 1 and 4 layers, less what the rest of the
// cost model explains (MeasureFixedCosts). Decode efficiency: the engine's decode of a synthetic
// model streamed from memory against the cost model's prediction for it (MeasureDecodeEfficiency).
// The read bandwidth: the probe `lowbit bench` prints, best of 3.
// The cache is machine.json (advise/probe_cache.h), keyed by the boot id,
// the executable (path, size, time) and the thread count and ISA, so a rebuilt lowbit or a reboot
// measures again.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <vector>

#include <fmt/format.h>

#include "lowbit/advise/hardware.h"
#include "lowbit/advise/probe_cache.h"
#include "lowbit/advise/probe_rows.h"
#include "lowbit/base/progress.h"
#include "lowbit/base/thread_pool.h"
#include "lowbit/eval/bandwidth.h"
#include "lowbit/kernels/dot.h"
#include "lowbit/kernels/matvec.h"
#include "lowbit/formats/gguf_reader.h"
#include "lowbit/model/llama.h"
#include "lowbit/model/shard.h"
#include "lowbit/numeric/bnb.h"
#include "lowbit/numeric/interleave.h"
#include "lowbit/pipeline/synth.h"
#include "lowbit/quant/quantize.h"

namespace lowbit {
namespace {

constexpr size_t kStreamBytes = size_t{128} << 20;
constexpr int64_t kCols = 4096;
constexpr int kCacheVersion = 16;  // 6: the read probe in 2 MiB pages, the faster of with and without prefetch; 7: NF4G64x2 rows; 8: rows ImageRowStep apart; 9: Q4_K interleaved; 10: Q5_K too; 11: Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL too; 12: Q2_K too; 13: Q3_K too; 14: IQ4_XS too; 15: Q6_K too; 16: float products on FMA

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The types measured: every type the advisor's candidates use (their mixes included), F32 (norms,
// F32 files), and the other common ones. Other types take the speed of the measured type nearest
// in bits per weight (MachineSpeed::Find).
std::vector<GgmlType> ProbedTypes(const DotKernels& k) {
  std::vector<GgmlType> out;
  for (GgmlType t : {GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16, GgmlType::kQ8_0, GgmlType::kQ6_K, GgmlType::kQ5_K,
                     GgmlType::kQ5_0, GgmlType::kQ4_K, GgmlType::kQ4_0, GgmlType::kIQ4_XS, GgmlType::kQ3_K, GgmlType::kQ2_K}) {
    if (k.For(t) != nullptr && FromFloatFor(t) != nullptr) out.push_back(t);
  }
  // The rows GPTQ / AWQ and bitsandbytes NF4 folders run as (advise's folder candidates).
  for (GgmlType t : {GgmlType::kW4G128, GgmlType::kNF4G64x2}) {
    if (k.For(t) != nullptr) out.push_back(t);
  }
  return out;
}

// One block of an internal row type with random codes and a plausible scale (these types have no
// quantizer from floats: their rows come from folders): W4G128 (fp16 scale, int16 zero point, 4-bit
// codes) and the bitsandbytes 4-bit rows (an fp32 absmax per bitsandbytes block, 4-bit codes).
void FillInternalBlock(GgmlType type, uint8_t* b, std::mt19937* rng) {
  std::uniform_int_distribution<int> byte(0, 255);
  size_t codes_at = 0;
  if (type == GgmlType::kW4G128) {
    const uint16_t d = 0x2000;  // 2^-7 in fp16
    const int16_t z = 8;
    std::memcpy(b, &d, 2);
    std::memcpy(b + 2, &z, 2);
    codes_at = 4;
  } else {
    const float d = 0.05f;
    const size_t absmaxes = IsBnb4PairType(type) ? 2 : 1;
    for (size_t i = 0; i < absmaxes; ++i) std::memcpy(b + 4 * i, &d, 4);
    codes_at = 4 * absmaxes;
  }
  for (size_t i = codes_at; i < TypeInfo(type).block_bytes; ++i) b[i] = static_cast<uint8_t>(byte(*rng));
}

}  // namespace

bool CanFillProbeRows(GgmlType type) {
  return FromFloatFor(type) != nullptr || type == GgmlType::kW4G128 || IsBnb4Type(type);
}

void FillProbeRows(GgmlType type, int64_t cols, uint8_t* buf, size_t bytes, uint64_t step, bool interleave) {
  const uint64_t row_bytes = *RowBytes(type, static_cast<uint64_t>(cols));
  if (step == 0) step = row_bytes;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0, 1);
  std::vector<float> row(static_cast<size_t>(cols));
  std::vector<uint8_t> tile(32 * step);  // the bytes between rows stay zero
  const size_t block = TypeInfo(type).block_bytes;
  for (size_t r = 0; r < 32; ++r) {
    for (float& v : row) v = normal(rng);
    uint8_t* at = tile.data() + r * step;
    if (FromFloatFor(type) != nullptr) {
      FromFloatFor(type)(row.data(), at, cols, nullptr);
    } else {
      for (size_t off = 0; off < row_bytes; off += block) FillInternalBlock(type, at + off, &rng);
    }
  }
  if (interleave) {
    LOWBIT_CHECK_MSG(step == row_bytes, "interleaved probe rows are packed");
    InterleaveRows(type, tile.data(), 32, cols);
  }
  for (size_t off = 0; off < bytes; off += tile.size()) std::memcpy(buf + off, tile.data(), std::min(tile.size(), bytes - off));
}

uint64_t ProbeRowStep(GgmlType type, int64_t cols) { return ImageRowStep(*RowBytes(type, static_cast<uint64_t>(cols))); }

GgmlType ProbeRunType(const DotKernels& k, GgmlType type, int64_t rows, int64_t cols) {
  return InterleavedFor(k, type, rows, cols, ProbeRowStep(type, cols)).value_or(type);
}

void FillProbeRowsAt(GgmlType type, int64_t cols, int64_t rows, uint8_t* buf, GgmlType run) {
  const uint64_t step = ProbeRowStep(type, cols);
  FillProbeRows(type, cols, buf, static_cast<size_t>(rows) * step, step, run != type);
}

namespace {

// GB/s of one-token products streaming `rows` rows of `type` (kCols wide, FillProbeRowsAt's layout)
// from `w`: the median of `passes` after a warm-up.
double StreamRate(const DotKernels& k, GgmlType type, const uint8_t* w, int64_t rows, ThreadPool* pool, MatMulScratch* scratch,
                  int passes = 3) {
  std::vector<float> x(kCols, 0.5f), y(static_cast<size_t>(rows));
  const MatMulArgs a{.type = type, .w = w, .rows = rows, .cols = kCols, .row_stride = ProbeRowStep(type, kCols), .x = x.data(), .batch = 1,
                     .y = y.data()};
  MatMul(k, a, pool, scratch);  // warm-up
  std::vector<double> rates;
  for (int pass = 0; pass < passes; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    MatMul(k, a, pool, scratch);
    rates.push_back(static_cast<double>(rows * static_cast<int64_t>(*RowBytes(type, kCols))) / Seconds(t0) / 1e9);
  }
  return Median(rates);
}

// GOP/s (2 per multiply-add) of a 512-token product (a prompt's batch) through 256 rows of `type`:
// the median of 5 passes, each as many products as fill kGemmPassSeconds (one product is a few
// milliseconds: on a busy machine a single one is timed inside or outside a time slice by chance).
double GemmRate(const DotKernels& k, GgmlType type, const uint8_t* w, ThreadPool* pool, MatMulScratch* scratch) {
  constexpr int64_t kRows = 256, kBatch = 512;
  constexpr double kGemmPassSeconds = 0.06;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0, 1);
  std::vector<float> x(kBatch * kCols), y(kBatch * kRows);
  for (float& v : x) v = normal(rng);
  const MatMulArgs a{.type = type, .w = w, .rows = kRows, .cols = kCols, .row_stride = ProbeRowStep(type, kCols), .x = x.data(), .batch = kBatch,
                     .y = y.data()};
  MatMul(k, a, pool, scratch);
  std::vector<double> rates;
  for (int pass = 0; pass < 5; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    int calls = 0;
    double s = 0;
    do {
      MatMul(k, a, pool, scratch);
      ++calls;
      s = Seconds(t0);
    } while (s < kGemmPassSeconds);
    rates.push_back(2.0 * kRows * kCols * kBatch * calls / s / 1e9);
  }
  return Median(rates);
}

// Seconds per decoded token of the engine on the synthetic model `so` describes (written to a
// temporary file, read into memory): `reps` runs of `tokens` tokens from position 0 after `warmup`
// tokens; the median run, or with `mean` the mean over all of them.
struct StepTiming {
  int64_t tokens = 32;
  int warmup = 8, reps = 3;
  bool mean = false;
};
Expected<double> DecodeStepSeconds(SynthOptions so, int threads, const StepTiming& st, const std::string& path, LlamaModel* model_out,
                                   std::unique_ptr<GgufFile>* file_out) {
  so.output = path;
  so.vocab = false;
  so.threads = threads;
  LOWBIT_RETURN_IF_ERROR(Synthesize(so).status());
  LOWBIT_ASSIGN_OR_RETURN(GgufFile f, GgufFile::Open(path, Residency::kInMemory));
  auto file = std::make_unique<GgufFile>(std::move(f));
  LOWBIT_ASSIGN_OR_RETURN(LlamaModel model, LlamaModel::Load(*file));
  std::error_code ec;
  std::filesystem::remove(path, ec);  // the model has read its weights into memory: the file is no longer needed
  LlamaSession s(model, SessionOptions{.n_ctx = st.tokens, .threads = threads, .max_batch = 1});
  for (int64_t i = 0; i < st.warmup; ++i) s.Forward(static_cast<int32_t>(i + 1), i % st.tokens);
  std::vector<double> per_token;
  for (int rep = 0; rep < st.reps; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < st.tokens; ++i) s.Forward(static_cast<int32_t>(100 + i), i);
    per_token.push_back(Seconds(t0) / static_cast<double>(st.tokens));
  }
  *model_out = std::move(model);
  *file_out = std::move(file);
  if (!st.mean) return Median(per_token);
  double sum = 0;
  for (double v : per_token) sum += v;
  return sum / static_cast<double>(per_token.size());
}

// A decode step's fixed costs (MachineSpeed::token_us, layer_us): what the engine's measured step
// time on models of 1 and 4 layers leaves unexplained by the cost model's products, attention and
// hand-offs at the speeds `m` already holds; the difference between the two is per layer. Negative
// residuals (the model too slow already) count as none.
Status MeasureFixedCosts(int threads, MachineSpeed* m) {
  std::error_code ec;
  const std::string dir = std::filesystem::temp_directory_path(ec).string();
  if (ec) return Errorf("no temporary directory to measure the decode step in: {}", ec.message());
  double residual[2] = {0, 0};
  const int64_t layers[2] = {1, 4};
  for (int i = 0; i < 2; ++i) {
    const std::string path = fmt::format("{}/lowbit-probe-{}-{}.gguf", dir, ::getpid(), layers[i]);
    LlamaModel model;
    std::unique_ptr<GgufFile> file;
    SynthOptions so;
    so.shape = "stories15m";
    so.type = "Q8_0";
    so.layers = layers[i];
    auto step = DecodeStepSeconds(so, threads, StepTiming{}, path, &model, &file);
    std::filesystem::remove(path, ec);
    if (!step.ok()) return Errorf("measuring the decode step: {}", step.status().message());
    LOWBIT_ASSIGN_OR_RETURN(double modelled, DecodeTokensPerSecond(WorkOf(model, false, threads), *m, 0, 32));
    residual[i] = *step - 1 / modelled;
  }
  const double per_layer = std::max(0.0, (residual[1] - residual[0]) / static_cast<double>(layers[1] - layers[0]));
  m->layer_us = per_layer * 1e6;
  m->token_us = std::max(0.0, residual[0] - per_layer) * 1e6;
  return OkStatus();
}

// MachineSpeed::decode_efficiency: the engine's decode of a model streamed from memory (one layer of
// Llama 2 7B's shape as Q4_K_M, with its 32000-row classifier: 200 MB a token, a product per matrix
// as a real model has; rows drawn for 64 rows of each tensor and repeated, so that the file is made
// in a fraction of a second), against the cost model's prediction at the speeds `m` holds. The
// prediction's non-weight part (attention, hand-offs, fixed costs) is kept; what is left of the
// measured step is the weights' streaming time.
Status MeasureDecodeEfficiency(int threads, MachineSpeed* m) {
  std::error_code ec;
  const std::string dir = std::filesystem::temp_directory_path(ec).string();
  if (ec) return Errorf("no temporary directory to measure the decode step in: {}", ec.message());
  const std::string path = fmt::format("{}/lowbit-probe-{}-stream.gguf", dir, ::getpid());
  SynthOptions so;
  so.shape = "llama2-7b";
  so.type = "Q4_K_M";
  so.layers = 1;
  so.repeat_rows = 64;
  LlamaModel model;
  std::unique_ptr<GgufFile> file;
  auto step = DecodeStepSeconds(so, threads, StepTiming{.tokens = 16, .warmup = 4, .reps = 4, .mean = true}, path, &model, &file);
  std::filesystem::remove(path, ec);
  if (!step.ok()) return Errorf("measuring the decode of a model in memory: {}", step.status().message());
  const ModelWork w = WorkOf(model, false, threads);
  m->decode_efficiency = 1;
  LOWBIT_ASSIGN_OR_RETURN(double full, DecodeTokensPerSecond(w, *m, 0, 16));
  m->decode_efficiency = 0.5;
  LOWBIT_ASSIGN_OR_RETURN(double half, DecodeTokensPerSecond(w, *m, 0, 16));
  m->decode_efficiency = 1;
  // t(e) = rest + weights / e, so weights = t(0.5) - t(1).
  const double weights = 1 / half - 1 / full, rest = 1 / full - weights;
  const double streamed = *step - rest;
  if (weights > 0 && streamed > 0) m->decode_efficiency = std::clamp(weights / streamed, 0.05, 20.0);
  return OkStatus();
}

// GFLOP/s of the attention kernel on all threads: 8 query heads over 1024 positions of 128 values.
double AttentionRate(const DotKernels& k, bool f16, ThreadPool* pool) {
  constexpr int64_t kQ = 8, kPos = 1024, kHd = 128;
  const size_t el = f16 ? 2 : 4;
  std::vector<uint8_t> kv(2 * kPos * kHd * el);
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> byte(0, 255);
  if (f16) {
    for (size_t i = 0; i < kv.size(); i += 2) {
      const uint16_t h = static_cast<uint16_t>(0x3000 | (byte(rng) << 1));  // small normal fp16 values
      std::memcpy(kv.data() + i, &h, 2);
    }
  } else {
    for (size_t i = 0; i < kv.size(); i += 4) {
      const float f = static_cast<float>(byte(rng)) / 256.0f - 0.5f;
      std::memcpy(kv.data() + i, &f, 4);
    }
  }
  const uint8_t* kc = kv.data();
  const uint8_t* vc = kv.data() + kPos * kHd * el;
  std::vector<float> q(kQ * kHd, 0.01f);
  const AttendFn attend = k.ForAttend(f16);
  const size_t items = static_cast<size_t>(8 * pool->size());
  auto run = [&](size_t b, size_t e) {
    std::vector<float> att(kQ * kPos), out(kQ * kHd);
    for (size_t i = b; i < e; ++i) attend(q.data(), kQ, kc, vc, kHd * el, kPos, kHd, 0.088f, att.data(), out.data());
  };
  pool->ParallelFor(items, run, 1);
  std::vector<double> rates;
  for (int pass = 0; pass < 3; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    pool->ParallelFor(items, run, 1);
    rates.push_back(static_cast<double>(items) * kQ * kPos * kHd * 4 / Seconds(t0) / 1e9);
  }
  return Median(rates);
}

// Microseconds one empty ParallelFor costs `pool` (0 for one thread).
double HandoffMicros(ThreadPool* pool) {
  if (pool->size() < 2) return 0;
  constexpr int kCalls = 2000;
  const size_t n = static_cast<size_t>(pool->size());
  pool->ParallelFor(n, [](size_t, size_t) {}, 1);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kCalls; ++i) pool->ParallelFor(n, [](size_t, size_t) {}, 1);
  return Seconds(t0) / kCalls * 1e6;
}

// The cache a model must fit in to be read from cache rather than memory: the last-level cache as
// glibc reports it (CPUID), at most 32 MiB. Large "last-level" figures are the sum over chiplets
// (a 2-core VM of this EPYC reports 508 MiB), of which one core reads its own chiplet's share.
uint64_t LastLevelCacheBytes() {
  constexpr uint64_t kCap = uint64_t{32} << 20;
  for (int name : {_SC_LEVEL3_CACHE_SIZE, _SC_LEVEL2_CACHE_SIZE}) {
    const long v = ::sysconf(name);
    if (v > 0) return std::min<uint64_t>(static_cast<uint64_t>(v), kCap);
  }
  return kCap;
}

Expected<MachineSpeed> Measure(int threads, Isa isa, bool show_progress, double* mapped_factor) {
  const DotKernels& k = DotKernelsFor(isa);
  const std::vector<GgmlType> types = ProbedTypes(k);
  Progress progress("measuring this machine", types.size() + 5, 0, show_progress);
  size_t done = 0;
  auto step = [&](const std::string& what) { progress.Update(++done, 0, what); };
  MachineSpeed m;
  m.threads = threads;
  {
    ReadBandwidthProbe probe(threads);
    for (int i = 0; i < 3; ++i) m.bandwidth_gbps = std::max(m.bandwidth_gbps, probe.Pass());
  }
  step("read bandwidth");
  ThreadPool pool(threads);
  MatMulScratch scratch;
  ProbeBuffer huge(kStreamBytes, true);
  if (huge.data() == nullptr) return Errorf("cannot allocate {} bytes to measure the kernels", kStreamBytes);
  ThreadPool one(1);
  const uint64_t llc = LastLevelCacheBytes();
  for (GgmlType t : types) {
    const int64_t rows = static_cast<int64_t>(huge.size() / ProbeRowStep(t, kCols)) / 8 * 8;
    const GgmlType run = ProbeRunType(k, t, rows, kCols);  // interleaved where a model in memory holds it so
    FillProbeRowsAt(t, kCols, rows, huge.data(), run);
    TypeSpeed& ts = m.types[t];
    ts.stream_gbps = StreamRate(k, run, huge.data(), rows, &pool, &scratch);
    ts.stream1_gbps = threads > 1 ? StreamRate(k, run, huge.data(), rows, &one, &scratch) : ts.stream_gbps;
    // A matrix of half the last-level cache read again and again, on all threads: what a model that
    // fits there reaches (if the cache does not keep it, as on a busy shared machine, this is no
    // faster than memory and the prediction says so).
    const int64_t cached_rows = std::max<int64_t>(8, static_cast<int64_t>(llc / 2 / *RowBytes(t, kCols)) / 8 * 8);
    ts.cached_gbps = StreamRate(k, run, huge.data(), std::min(rows, cached_rows), &pool, &scratch, 9);
    ts.gemm_gops = GemmRate(k, run, huge.data(), &pool, &scratch);
    step(std::string(TypeInfo(t).name));
  }
  {
    // The same stream from 4 KiB pages (a mapped model file: the file's layout), on the type most
    // files use, against the layout a model read into memory holds (interleaved, where it is).
    ProbeBuffer small(kStreamBytes, false);
    if (small.data() == nullptr) return Errorf("cannot allocate {} bytes to measure the kernels", kStreamBytes);
    const GgmlType t = GgmlType::kQ4_K;
    const int64_t rows = static_cast<int64_t>(small.size() / ProbeRowStep(t, kCols)) / 8 * 8;
    FillProbeRowsAt(t, kCols, rows, small.data());
    const double mapped = StreamRate(k, t, small.data(), rows, &pool, &scratch);
    const GgmlType run = ProbeRunType(k, t, rows, kCols);
    FillProbeRowsAt(t, kCols, rows, huge.data(), run);
    const double in_memory = StreamRate(k, run, huge.data(), rows, &pool, &scratch);
    *mapped_factor = in_memory > 0 ? std::min(1.0, mapped / in_memory) : 1;
  }
  step("4 KiB pages");
  m.llc_bytes = llc;
  m.attention_gflops = AttentionRate(k, false, &pool);
  m.attention_f16_gflops = AttentionRate(k, true, &pool);
  if (threads > 1) {
    m.handoff_us = HandoffMicros(&pool);
  } else {
    ThreadPool pair(2);  // for a described machine of several cores scaled from this one's
    m.handoff_us = HandoffMicros(&pair);
  }
  step("attention");
  LOWBIT_RETURN_IF_ERROR(MeasureFixedCosts(threads, &m));
  step("decode step");
  LOWBIT_RETURN_IF_ERROR(MeasureDecodeEfficiency(threads, &m));
  step("decode from memory");
  progress.Finish();
  return m;
}

}  // namespace

Expected<MachineSpeed> MeasureMachineSpeed(int threads, Isa isa, bool use_cache, bool show_progress, double* mapped_factor,
                                           bool* from_cache) {
  isa = std::min(isa, MaxSupportedIsa());
  const std::string key = ProbeCacheKey(kCacheVersion, threads, isa), path = ProbeCachePath("machine.json");
  *from_cache = false;
  if (use_cache && !key.empty() && !path.empty()) {
    const nlohmann::json all = ReadProbeCache(path);
    MachineSpeed m;
    if (all.contains(key) && MachineSpeed::FromJson(all[key].value("speed", nlohmann::json()), &m) &&
        all[key].value("mapped_factor", 0.0) > 0) {
      *mapped_factor = all[key]["mapped_factor"].get<double>();
      *from_cache = true;
      return m;
    }
  }
  LOWBIT_ASSIGN_OR_RETURN(MachineSpeed m, Measure(threads, isa, show_progress, mapped_factor));
  if (!key.empty() && !path.empty()) WriteProbeCache(path, key, {{"speed", m.ToJson()}, {"mapped_factor", *mapped_factor}});
  return m;
}

}  // namespace lowbit

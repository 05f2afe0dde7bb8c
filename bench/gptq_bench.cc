// GPTQ's phases in roofline units: GFLOP/s of the Hessian accumulation (H = 2/n X^T X), of the
// factorization (Cholesky + triangular inverse = U) and of the column loop with its lazy updates,
// beside the machine's fp32 FMA peak measured here (per core, and on all the threads used).
// Shapes: tinyllama-1.1b's linears (q/o 2048x2048, k/v 256x2048, gate/up 5632x2048, down 2048x5632)
// with 128 x 512 calibration tokens, and stories5M's (288x288, 768x288, 288x768) with 128 x 256.
// Optionally the same factorization and rank-k update through a LAPACK/BLAS library (--lapack PATH,
// loaded with dlopen; OPENBLAS_NUM_THREADS is set to --threads), for the comparison in
// docs/PERFORMANCE.md. Usage:
//   lowbit_gptq_bench [--threads N] [--model tinyllama|stories5M] [--seqs S] [--seqlen L] [--lapack PATH]
#include <dlfcn.h>
#include <sys/resource.h>

#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "lowbit/base/cpu_features.h"
#include "lowbit/base/thread_pool.h"
#include "lowbit/quant/gptq.h"
#include "lowbit/quant/hessian.h"
#include "lowbit/quant/linalg.h"

namespace lowbit::bench {
double FmaPeakAvx512(int64_t iters);
double FmaPeakAvx2(int64_t iters);
}  // namespace lowbit::bench

namespace {

using namespace lowbit;
using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// CPU seconds of this process (all threads) or of the calling thread. On a machine shared with other
// jobs the wall time depends on the load; flops per CPU-second against the FMA loop's flops per
// CPU-second is the efficiency the code reaches on the time it gets.
double CpuSeconds(clockid_t clock = CLOCK_PROCESS_CPUTIME_ID) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

struct Timer {
  Clock::time_point wall = Clock::now();
  double cpu = CpuSeconds();
  double Wall() const { return Since(wall); }
  double Cpu() const { return CpuSeconds() - cpu; }
};

double PeakRssMiB() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

struct Peak {
  double per_cpu_second;  // GFLOP per CPU-second of one thread (the core's peak while it runs)
  double wall;            // GFLOP/s of `threads` threads at once, by the wall clock
};

// The FMA loop on `threads` threads at once, best of 3 runs.
Peak FmaPeak(int threads) {
  const bool avx512 = ActiveIsa() >= Isa::kAvx512;
  auto run = [&](int64_t iters) { return avx512 ? bench::FmaPeakAvx512(iters) : bench::FmaPeakAvx2(iters); };
  const int64_t iters = 10'000'000;
  Peak best{0, 0};
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<std::thread> ts;
    std::vector<double> flops(static_cast<size_t>(threads)), cpu(static_cast<size_t>(threads));
    const auto t0 = Clock::now();
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&, t] {
        const double c0 = CpuSeconds(CLOCK_THREAD_CPUTIME_ID);
        flops[static_cast<size_t>(t)] = run(iters);
        cpu[static_cast<size_t>(t)] = CpuSeconds(CLOCK_THREAD_CPUTIME_ID) - c0;
      });
    }
    for (auto& t : ts) t.join();
    const double s = Since(t0);
    double total = 0;
    for (int t = 0; t < threads; ++t) {
      total += flops[static_cast<size_t>(t)];
      best.per_cpu_second = std::max(best.per_cpu_second, flops[static_cast<size_t>(t)] / cpu[static_cast<size_t>(t)] / 1e9);
    }
    best.wall = std::max(best.wall, total / s / 1e9);
  }
  return best;
}

std::vector<float> Random(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

// LAPACK/BLAS entry points (Fortran ABI), when a library is given.
struct Lapack {
  void (*spotrf)(const char*, const int*, float*, const int*, int*) = nullptr;
  void (*strtri)(const char*, const char*, const int*, float*, const int*, int*) = nullptr;
  void (*ssyrk)(const char*, const char*, const int*, const int*, const float*, const float*, const int*, const float*,
                float*, const int*) = nullptr;
  bool ok() const { return spotrf && strtri && ssyrk; }
};

Lapack LoadLapack(const char* path) {
  Lapack l;
  void* h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    std::fprintf(stderr, "cannot load %s: %s\n", path, dlerror());
    return l;
  }
  l.spotrf = reinterpret_cast<decltype(l.spotrf)>(dlsym(h, "spotrf_"));
  l.strtri = reinterpret_cast<decltype(l.strtri)>(dlsym(h, "strtri_"));
  l.ssyrk = reinterpret_cast<decltype(l.ssyrk)>(dlsym(h, "ssyrk_"));
  if (!l.ok()) std::fprintf(stderr, "%s lacks spotrf_/strtri_/ssyrk_\n", path);
  return l;
}

struct Shape {
  const char* name;
  int64_t rows, cols;
};

Peak g_peak;

// wall seconds, GFLOP/s by the wall clock, GFLOP per CPU-second and its share of one core's peak.
void Row(const char* phase, const std::string& what, double wall, double cpu, double flops) {
  const double gf = flops / wall / 1e9, gfc = flops / cpu / 1e9;
  std::printf("%-8s %-26s %8.3f s %7.1f GFLOP/s | cpu %8.3f s %6.1f GFLOP/cpu-s %5.1f%% of core peak | RSS %.0f MiB\n",
              phase, what.c_str(), wall, gf, cpu, gfc, 100 * gfc / g_peak.per_cpu_second, PeakRssMiB());
  std::fflush(stdout);
}
void Row(const char* phase, const std::string& what, const Timer& t, double flops) {
  Row(phase, what, t.Wall(), t.Cpu(), flops);
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2;
  std::string model = "tinyllama", lapack_path;
  int64_t seqs = -1, seqlen = -1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--threads") threads = std::atoi(next());
    else if (a == "--model") model = next();
    else if (a == "--seqs") seqs = std::atoll(next());
    else if (a == "--seqlen") seqlen = std::atoll(next());
    else if (a == "--lapack") lapack_path = next();
    else {
      std::fprintf(stderr, "usage: %s [--threads N] [--model tinyllama|stories5M] [--seqs S] [--seqlen L] [--lapack PATH]\n", argv[0]);
      return 2;
    }
  }
  std::vector<Shape> shapes;
  if (model == "tinyllama") {
    shapes = {{"q_proj/o_proj", 2048, 2048}, {"k_proj/v_proj", 256, 2048}, {"gate/up", 5632, 2048}, {"down", 2048, 5632}};
    if (seqs < 0) seqs = 128;
    if (seqlen < 0) seqlen = 512;
  } else if (model == "stories5M") {
    shapes = {{"q/k/v/o", 288, 288}, {"gate/up", 768, 288}, {"down", 288, 768}};
    if (seqs < 0) seqs = 128;
    if (seqlen < 0) seqlen = 256;
  } else {
    std::fprintf(stderr, "unknown model %s\n", model.c_str());
    return 2;
  }
  const std::string nthreads = std::to_string(threads);
  setenv("OPENBLAS_NUM_THREADS", nthreads.c_str(), 1);
  Lapack lapack;
  if (!lapack_path.empty()) lapack = LoadLapack(lapack_path.c_str());

  ThreadPool pool(threads);
  std::printf("lowbit GPTQ phases: %s, %lld x %lld calibration tokens, %d threads, kernels %s\n", model.c_str(),
              static_cast<long long>(seqs), static_cast<long long>(seqlen), threads, ActiveLinalgKernels().name);
  g_peak = FmaPeak(1);
  const Peak all = FmaPeak(threads);
  std::printf("fp32 FMA peak (%s): %.1f GFLOP per CPU-second on one core; %.1f GFLOP/s by the wall clock on 1 thread, "
              "%.1f on %d threads (the wall figures show how much of the machine this process got)\n",
              ActiveIsa() >= Isa::kAvx512 ? "AVX-512" : "AVX2", g_peak.per_cpu_second, g_peak.wall, all.wall, threads);

  // The GEMM kernel alone on one 32 x 32 tile, k = 256, data in L1 (the ceiling of the phases below).
  {
    const std::vector<float> a = Random(32 * 256, 3), b = Random(32 * 256, 4);
    std::vector<float> c(32 * 32, 0.0f);
    GemmArgs g;
    g.m = 32;
    g.n = 32;
    g.k = 256;
    g.a = a.data();
    g.a_rs = 1;
    g.a_ks = 32;
    g.b = b.data();
    g.ldb = 32;
    g.c = c.data();
    g.ldc = 32;
    const int reps = 20000;
    const Timer t;
    for (int i = 0; i < reps; ++i) ActiveLinalgKernels().gemm(g, GemmMode::kAdd);
    Row("kernel", "gemm 32x32x256 in L1", t, 2.0 * reps * 32 * 32 * 256);
  }

  // Hessians, one per input width (q/k/v share one, gate/up share one: the pipeline accumulates each once).
  std::map<int64_t, std::vector<float>> hessians;
  for (const Shape& s : shapes) {
    if (hessians.count(s.cols)) continue;
    const std::vector<float> x = Random(static_cast<size_t>(seqlen * s.cols), 1);
    HessianAccumulator acc(s.cols);
    const Timer t0;
    for (int64_t b = 0; b < seqs; ++b) acc.AddBatch(x.data(), seqlen, s.cols, &pool);
    const double useful = 2.0 * static_cast<double>(seqs * seqlen) * s.cols * (s.cols + 1) / 2;
    Row("hessian", "cols " + std::to_string(s.cols), t0, useful);
    if (lapack.ok()) {
      std::vector<float> c(static_cast<size_t>(s.cols * s.cols), 0.0f);
      const int n = static_cast<int>(s.cols), k = static_cast<int>(seqlen);
      const float alpha = 1.0f, beta = 1.0f;
      const Timer t1;
      const int64_t reps = std::max<int64_t>(1, seqs / 8);
      for (int64_t b = 0; b < reps; ++b) lapack.ssyrk("U", "N", &n, &k, &alpha, x.data(), &n, &beta, c.data(), &n);
      Row("ssyrk", "cols " + std::to_string(s.cols) + " (1/8 tokens)", t1,
          2.0 * static_cast<double>(reps * seqlen) * s.cols * (s.cols + 1) / 2);
    }
    std::vector<float> h = acc.Finish(&pool);
    hessians[s.cols] = std::move(h);
  }

  // The factorization alone (damped H -> L -> L^-1), and through LAPACK.
  for (const auto& [n, h] : hessians) {
    std::vector<float> a = h;
    double mean = 0;
    for (int64_t i = 0; i < n; ++i) mean += a[static_cast<size_t>(i * n + i)];
    for (int64_t i = 0; i < n; ++i) a[static_cast<size_t>(i * n + i)] += static_cast<float>(0.01 * mean / n);
    std::vector<float> b = a;
    const double nn = static_cast<double>(n);
    int64_t bad = 0;
    Timer t0;
    if (!linalg::CholeskyLower(a.data(), n, n, &pool, &bad)) std::printf("cholesky failed at %lld\n", static_cast<long long>(bad));
    Row("cholesky", "n " + std::to_string(n), t0, nn * nn * nn / 3);
    t0 = Timer();
    linalg::InvertLowerTriangular(a.data(), n, n, &pool);
    Row("trtri", "n " + std::to_string(n), t0, nn * nn * nn / 3);
    if (lapack.ok()) {
      const int ni = static_cast<int>(n);
      int info = 0;
      t0 = Timer();
      lapack.spotrf("U", &ni, b.data(), &ni, &info);  // row-major lower = column-major upper
      Row("spotrf", "n " + std::to_string(n), t0, nn * nn * nn / 3);
      t0 = Timer();
      lapack.strtri("U", "N", &ni, b.data(), &ni, &info);
      Row("strtri", "n " + std::to_string(n), t0, nn * nn * nn / 3);
    }
  }

  // GPTQ on each shape, 4-bit group 128 asym (the factor phase includes the permutation and copies).
  for (const Shape& s : shapes) {
    const std::vector<float> w = Random(static_cast<size_t>(s.rows * s.cols), 2);
    GptqOptions o;
    o.quant.bits = 4;
    o.quant.group_size = 128;
    const Timer t0;
    auto r = GptqQuantize(w.data(), s.rows, s.cols, hessians[s.cols], o, &pool, s.name);
    const double total = t0.Wall(), total_cpu = t0.Cpu();
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().message().c_str());
      return 1;
    }
    const std::string what = std::string(s.name) + " " + std::to_string(s.rows) + "x" + std::to_string(s.cols);
    Row("factor", what, r->stats.seconds_factor, r->stats.cpu_seconds_factor, r->stats.flops_factor);
    Row("update", what, r->stats.seconds_quantize, r->stats.cpu_seconds_quantize, r->stats.flops_update);
    std::printf("%-8s %-26s %8.3f s (cpu %.3f s)\n", "gptq", what.c_str(), total, total_cpu);
  }
  std::printf("peak RSS %.0f MiB\n", PeakRssMiB());
  return 0;
}

// All-reduce latency over MPI for the vector sizes of tensor-parallel decode and prefill, by method:
//   mpi         MPI_Allreduce in place (what MpiComm::AllReduceSum calls), timed without lowbit
//   comm        MpiComm::AllReduceSum itself (the same, plus the watchdog's two stores)
//   persistent  MPIX_Allreduce_init once, then MPI_Start + MPI_Wait (Open MPI's pcollreq extension)
//   iallreduce  MPI_Iallreduce + MPI_Wait
//   gather-sum  MPI_Allgather of every rank's vector, summed locally in rank order
//   bf16, q8    ReducedPrecisionComm (vectors gathered in bf16 or 8-bit blocks)
// Prints one line per (method, floats): median, 10th and 90th percentile in microseconds on rank 0,
// then an alpha-beta fit (t = alpha + beta * bytes) per method; --json prints the same as JSON.
// Usage: mpirun -np N lowbit_tp_allreduce [--iters 2000] [--sizes 2048,4096,...] [--only METHOD] [--json]
#define OMPI_SKIP_MPICXX 1
#include <mpi.h>
#if defined(OPEN_MPI)
#include <mpi-ext.h>  // defines OMPI_HAVE_MPI_EXT_PCOLLREQ where persistent collectives exist
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lowbit/parallel/comm.h"
#include "lowbit/parallel/mpi_comm.h"

namespace {

using lowbit::Comm;

struct Stats {
  double median, p10, p90, mean;
};

Stats Time(int iters, const std::function<void()>& op) {
  for (int i = 0; i < std::max(20, iters / 10); ++i) op();  // warm-up
  MPI_Barrier(MPI_COMM_WORLD);
  std::vector<double> us(static_cast<size_t>(iters));
  for (int i = 0; i < iters; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    op();
    us[i] = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  }
  double sum = 0;
  for (const double t : us) sum += t;
  std::sort(us.begin(), us.end());
  return {us[us.size() / 2], us[us.size() / 10], us[us.size() * 9 / 10], sum / static_cast<double>(us.size())};
}

std::vector<int64_t> ParseSizes(const char* s) {
  std::vector<int64_t> v;
  for (const char* p = s; *p;) {
    v.push_back(std::strtoll(p, const_cast<char**>(&p), 10));
    if (*p == ',') ++p;
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  int iters = 2000;
  bool json = false;
  std::string only;
  // Decode: one token's vector (n_embd of TinyLlama, Llama-2-7B, 13B, 70B); prefill: 64 and 512
  // tokens of TinyLlama.
  std::vector<int64_t> sizes = {256, 2048, 4096, 5120, 8192, 2048 * 64, 2048 * 512};
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--iters") && i + 1 < argc) iters = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--sizes") && i + 1 < argc) sizes = ParseSizes(argv[++i]);
    else if (!std::strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
    else if (!std::strcmp(argv[i], "--json")) json = true;
  }
  auto comm = lowbit::CreateMpiComm();
  if (!comm.ok()) {
    std::fprintf(stderr, "%s\n", comm.status().message().c_str());
    return 1;
  }
  Comm* c = comm->get();
  const int rank = c->rank(), n = c->size();
  lowbit::ReducedPrecisionComm bf16(c, lowbit::ReducePrecision::kBF16), q8(c, lowbit::ReducePrecision::kQ8);
  nlohmann::json rows = nlohmann::json::array();
  if (rank == 0 && !json) std::printf("# %d ranks, %s; %d iterations per point\n%-11s %9s %10s %10s %10s\n", n, c->Describe().c_str(), iters,
                                      "method", "floats", "median us", "p10 us", "p90 us");
  for (int64_t size : sizes) {
    const int count = static_cast<int>(size);
    const int it = size > 100000 ? std::max(20, iters / 20) : iters;
    std::vector<float> x(static_cast<size_t>(size), 1.0f / static_cast<float>(n)), all(static_cast<size_t>(size) * n);
    auto reset = [&] { std::fill(x.begin(), x.end(), 1.0f / static_cast<float>(n)); };
    std::vector<std::pair<std::string, std::function<void()>>> methods = {
        {"mpi", [&] { MPI_Allreduce(MPI_IN_PLACE, x.data(), count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); }},
        {"comm", [&] { c->AllReduceSum(x.data(), size); }},
        {"iallreduce", [&] {
           MPI_Request req;
           MPI_Iallreduce(MPI_IN_PLACE, x.data(), count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req);
           MPI_Wait(&req, MPI_STATUS_IGNORE);
         }},
        {"gather-sum", [&] {
           MPI_Allgather(x.data(), count, MPI_FLOAT, all.data(), count, MPI_FLOAT, MPI_COMM_WORLD);
           std::fill(x.begin(), x.end(), 0.0f);
           for (int q = 0; q < n; ++q) {
             for (int64_t i = 0; i < size; ++i) x[i] += all[q * size + i];
           }
         }},
        {"bf16", [&] { bf16.AllReduceSum(x.data(), size); }},
        {"q8", [&] { q8.AllReduceSum(x.data(), size); }},
    };
#if defined(OMPI_HAVE_MPI_EXT_PCOLLREQ)
    MPI_Request persistent;
    MPIX_Allreduce_init(MPI_IN_PLACE, x.data(), count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, MPI_INFO_NULL, &persistent);
    methods.insert(methods.begin() + 2, {"persistent", [&] {
                                            MPI_Start(&persistent);
                                            MPI_Wait(&persistent, MPI_STATUS_IGNORE);
                                          }});
#endif
    for (auto& [name, op] : methods) {
      if (!only.empty() && name != only) continue;
      reset();
      const Stats s = Time(it, op);
      if (rank == 0) {
        rows.push_back({{"method", name}, {"floats", size}, {"bytes", size * 4}, {"median_us", s.median}, {"p10_us", s.p10}, {"p90_us", s.p90}, {"mean_us", s.mean}});
        if (!json) std::printf("%-11s %9lld %10.2f %10.2f %10.2f\n", name.c_str(), static_cast<long long>(size), s.median, s.p10, s.p90);
      }
    }
#if defined(OMPI_HAVE_MPI_EXT_PCOLLREQ)
    MPI_Request_free(&persistent);
#endif
  }
  if (rank == 0) {
    // Least-squares fit of median = alpha + beta * bytes per method, over the decode sizes (< 64 KiB);
    // in the JSON also of the mean ("fits_mean"), which a decode's sum of many all-reduces pays.
    nlohmann::json fits = nlohmann::json::object(), fits_mean = nlohmann::json::object();
    std::vector<std::string> names;
    for (const auto& r : rows) {
      if (std::find(names.begin(), names.end(), r["method"]) == names.end()) names.push_back(r["method"]);
    }
    if (!json) std::printf("# alpha-beta fit over vectors below 64 KiB: t = alpha + beta * bytes\n");
    for (const std::string& m : names) {
      auto fit = [&](const char* key) -> nlohmann::json {
        double sx = 0, sy = 0, sxx = 0, sxy = 0, k = 0;
        for (const auto& r : rows) {
          if (r["method"] != m || r["bytes"].get<double>() >= 65536) continue;
          const double bx = r["bytes"], y = r[key];
          sx += bx, sy += y, sxx += bx * bx, sxy += bx * y, k += 1;
        }
        if (k < 2) return nullptr;
        const double beta = (k * sxy - sx * sy) / (k * sxx - sx * sx), alpha = (sy - beta * sx) / k;
        return {{"alpha_us", alpha}, {"beta_us_per_byte", beta}};
      };
      fits[m] = fit("median_us");
      fits_mean[m] = fit("mean_us");
      if (fits[m].is_null()) continue;
      if (!json) {
        std::printf("%-11s alpha %8.2f us  beta %8.5f us/KB\n", m.c_str(), fits[m]["alpha_us"].get<double>(),
                    fits[m]["beta_us_per_byte"].get<double>() * 1000);
      }
    }
    if (json) std::printf("%s\n", nlohmann::json({{"ranks", n}, {"comm", c->Describe()}, {"points", rows}, {"fits", fits}, {"fits_mean", fits_mean}}).dump(2).c_str());
  }
  return 0;
}

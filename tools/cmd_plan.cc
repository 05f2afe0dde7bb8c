// `lowbit plan -m MODEL --tp N --net LATENCY,BANDWIDTH`: predicted decode speed of MODEL on 1..N
// tensor-parallel ranks joined by that network (eval/tp_cost.h), from this machine's measured read
// bandwidth and one rank's measured decode efficiency.
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "lowbit/eval/bench.h"
#include "lowbit/eval/tp_cost.h"
#include "lowbit/model/llama.h"

namespace lowbit::tools {

namespace {

struct PlanArgs {
  std::string model, net = "0us,0gbit";
  int tp = 2, threads = 1;
  double mem_bw = 0, efficiency = 0, sw_alpha_us = kDefaultSoftwareAlphaUs, sw_beta_us_per_kb = 0;
  bool same_host = false, json = false;
  // MPI's own cost per message round, measured over shared memory with 2 ranks on the machine of
  // docs/PERFORMANCE.md ("Tensor parallelism": bench/tp_allreduce.cc, 256-float all-reduce).
  static constexpr double kDefaultSoftwareAlphaUs = 2.0;
};

Status Plan(const PlanArgs& a) {
  const size_t comma = a.net.find(',');
  if (comma == std::string::npos) return Errorf("--net '{}' must be LATENCY,BANDWIDTH (e.g. 50us,10gbit)", a.net);
  TpLink link;
  LOWBIT_ASSIGN_OR_RETURN(link.latency_s, ParseLatency(a.net.substr(0, comma)));
  LOWBIT_ASSIGN_OR_RETURN(link.bandwidth_Bps, ParseBandwidth(a.net.substr(comma + 1)));
  link.stack_s_per_byte = a.sw_beta_us_per_kb * 1e-6 / 1000;
  LOWBIT_ASSIGN_OR_RETURN(GgufFile g, GgufFile::Open(a.model, Residency::kMapped));
  // One rank's decode on this machine: how much of the probe's bandwidth the kernels reach.
  double efficiency = a.efficiency, one_rank_bw = a.mem_bw * 1e9;
  if (efficiency <= 0 || one_rank_bw <= 0) {
    LOWBIT_ASSIGN_OR_RETURN(GgufFile whole, GgufFile::Open(a.model, Residency::kAuto));
    LOWBIT_ASSIGN_OR_RETURN(LlamaModel m, LlamaModel::Load(whole));
    LOWBIT_ASSIGN_OR_RETURN(BenchResult b, Bench(m, {.n_prompt = 0, .n_gen = 16, .threads = a.threads, .reps = 2}));
    if (efficiency <= 0) efficiency = b.gbps / b.bandwidth_gbps;
    if (one_rank_bw <= 0) one_rank_bw = b.bandwidth_gbps * 1e9;
  }
  nlohmann::json rows = nlohmann::json::array();
  if (!a.json) {
    std::printf("model %s | link %.0f us, %.2f GB/s | software alpha %.1f us, beta %.3f us/KB | %d thread(s) per rank, efficiency %.2f%s\n",
                a.model.c_str(), link.latency_s * 1e6, link.bandwidth_Bps / 1e9, a.sw_alpha_us, a.sw_beta_us_per_kb, a.threads, efficiency,
                a.same_host ? " | ranks share this machine" : "");
    std::printf("%-6s %10s %10s %12s %12s %11s %11s %9s %9s\n", "ranks", "MB/rank", "GB/s/rank", "compute ms", "all-red. ms",
                "gather ms", "token ms", "tok/s", "speed-up");
  }
  double base = 0;
  for (int n = 1; n <= a.tp; ++n) {
    auto in = TpCostInputsFor(g, n);
    if (!in.ok()) {
      if (!a.json) std::printf("%-6d cannot split: %s\n", n, in.status().message().c_str());
      rows.push_back({{"ranks", n}, {"error", in.status().message()}});
      continue;
    }
    // Ranks on one machine share its bandwidth: the probe with all their threads, divided.
    in->read_Bps = a.same_host && n > 1 && a.mem_bw <= 0 ? MeasureReadBandwidth(n * a.threads) * 1e9 / n : one_rank_bw;
    in->efficiency = efficiency;
    in->link = link;
    in->software_alpha_s = a.sw_alpha_us * 1e-6;
    const TpCostPrediction p = PredictTpDecode(*in);
    if (n == 1) base = p.tok_per_s;
    rows.push_back({{"ranks", n}, {"max_rank_bytes", p.max_rank_bytes}, {"read_gbps_per_rank", in->read_Bps / 1e9},
                    {"compute_ms", p.compute_s * 1e3}, {"allreduce_ms", p.allreduce_s * 1e3}, {"gather_ms", p.gather_s * 1e3},
                    {"broadcast_ms", p.broadcast_s * 1e3}, {"token_ms", p.token_s * 1e3}, {"tok_per_s", p.tok_per_s},
                    {"speedup", base > 0 ? p.tok_per_s / base : 0.0}});
    if (!a.json) {
      std::printf("%-6d %10.1f %10.2f %12.3f %12.3f %11.3f %11.3f %9.2f %8.2fx\n", n, p.max_rank_bytes / 1e6, in->read_Bps / 1e9,
                  p.compute_s * 1e3, p.allreduce_s * 1e3, p.gather_s * 1e3 + p.broadcast_s * 1e3, p.token_s * 1e3, p.tok_per_s,
                  base > 0 ? p.tok_per_s / base : 0.0);
    }
  }
  if (a.json) {
    nlohmann::json j = {{"model", a.model}, {"latency_us", link.latency_s * 1e6}, {"bandwidth_gbps", link.bandwidth_Bps * 8 / 1e9},
                        {"software_alpha_us", a.sw_alpha_us}, {"software_beta_us_per_kb", a.sw_beta_us_per_kb}, {"threads", a.threads}, {"efficiency", efficiency},
                        {"one_rank_read_gbps", one_rank_bw / 1e9}, {"same_host", a.same_host}, {"ranks", rows}};
    std::printf("%s\n", j.dump(2).c_str());
  }
  return OkStatus();
}

}  // namespace

void AddPlan(CLI::App& app, Registry& r) {
  auto a = std::make_shared<PlanArgs>();
  CLI::App* sub = app.add_subcommand("plan", "Predict decode speed over 1..N tensor-parallel ranks and a network (alpha-beta model)");
  sub->add_option("-m,--model", a->model, "GGUF model")->required();
  sub->add_option("--tp", a->tp, "largest rank count")->check(CLI::Range(1, 1024));
  sub->add_option("--net", a->net, "link latency and bandwidth, e.g. 50us,10gbit or 200us,1gbit");
  sub->add_option("-t,--threads", a->threads, "threads per rank")->check(CLI::Range(1, 1024));
  sub->add_option("--mem-bw", a->mem_bw, "read bandwidth of one rank in GB/s (default: measured)")->check(CLI::Range(0.0, 1e6));
  sub->add_option("--efficiency", a->efficiency, "fraction of it the decode reaches (default: measured on one rank)")
      ->check(CLI::Range(0.0, 1.0));
  sub->add_option("--sw-alpha", a->sw_alpha_us, "MPI's own cost per message round in us")->check(CLI::Range(0.0, 1e6));
  sub->add_option("--sw-beta", a->sw_beta_us_per_kb, "the software's cost per KB and round on top of the link's bandwidth, in us (default 0)")
      ->check(CLI::Range(0.0, 1e6));
  sub->add_flag("--same-host", a->same_host, "all ranks on this machine (they share its memory bandwidth)");
  sub->add_flag("--json", a->json, "print one JSON object");
  r.Add(sub, [a]() { return Plan(*a); });
}

}  // namespace lowbit::tools

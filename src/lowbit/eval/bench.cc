#include "lowbit/eval/bench.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <random>

#include "lowbit/base/aligned_buffer.h"
#include "lowbit/base/thread_pool.h"
#include "lowbit/eval/bandwidth.h"

namespace lowbit {
namespace {

double Seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

void MeanStd(const std::vector<double>& v, double* mean, double* sd) {
  double s = 0, s2 = 0;
  for (double x : v) {
    s += x;
    s2 += x * x;
  }
  *mean = s / static_cast<double>(v.size());
  *sd = v.size() > 1 ? std::sqrt(std::max(0.0, (s2 - s * *mean) / static_cast<double>(v.size() - 1))) : 0;
}

uint64_t Bytes(const WeightView& w) { return *RowBytes(w.type, static_cast<uint64_t>(w.cols)) * static_cast<uint64_t>(w.rows); }

}  // namespace

double MeasureReadBandwidth(int threads, size_t mib, int passes) {
  ReadBandwidthProbe probe(threads, mib << 20);
  double best = 0;
  for (int i = 0; i < passes; ++i) best = std::max(best, probe.Pass());
  return best;
}

double WeightBytesPerToken(const LlamaModel& m) {
  double b = static_cast<double>(Bytes(m.output) + Bytes(m.output_norm));
  b += static_cast<double>(*RowBytes(m.token_embd.type, static_cast<uint64_t>(m.token_embd.cols)));
  for (const auto& L : m.layers) {
    for (const WeightView* w : {&L.attn_norm, &L.wq, &L.wk, &L.wv, &L.wo, &L.ffn_norm, &L.gate, &L.up, &L.down}) {
      b += static_cast<double>(Bytes(*w));
    }
    if (L.gate_exps.empty()) continue;
    // A mixture of experts: the router, the experts a token uses (their matrices are alike in size),
    // the shared expert.
    b += static_cast<double>(Bytes(L.router) + Bytes(L.shexp_gate_inp) + Bytes(L.shexp_gate) + Bytes(L.shexp_up) + Bytes(L.shexp_down));
    b += static_cast<double>(m.config().n_expert_used) * static_cast<double>(Bytes(L.gate_exps[0]) + Bytes(L.up_exps[0]) + Bytes(L.down_exps[0]));
  }
  return b;
}

double MatMulOpsPerToken(const LlamaModel& m) {
  double macs = static_cast<double>(m.output.rows) * static_cast<double>(m.output.cols);
  for (const auto& L : m.layers) {
    for (const WeightView* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.gate, &L.up, &L.down, &L.router, &L.shexp_gate, &L.shexp_up, &L.shexp_down}) {
      macs += static_cast<double>(w->rows) * static_cast<double>(w->cols);
    }
    for (size_t e = 0; e < std::min<size_t>(L.gate_exps.size(), static_cast<size_t>(m.config().n_expert_used)); ++e) {
      for (const WeightView* w : {&L.gate_exps[e], &L.up_exps[e], &L.down_exps[e]}) macs += static_cast<double>(w->rows) * static_cast<double>(w->cols);
    }
  }
  return 2 * macs;
}

Expected<BenchResult> Bench(const LlamaModel& model, const BenchOptions& o) {
  const LlamaConfig& c = model.config();
  if (o.n_prompt + o.n_gen > c.n_ctx_train) {
    return Errorf("-p {} plus -n {} exceed the model's context of {}", o.n_prompt, o.n_gen, c.n_ctx_train);
  }
  if (o.reps < 1) return Errorf("-r must be at least 1");
  BenchResult r;
  r.threads = o.threads;
  LocalComm local;
  Comm* comm = o.comm != nullptr ? o.comm : &local;
  LlamaSession s(model, SessionOptions{.n_ctx = o.n_prompt + o.n_gen, .threads = o.threads, .max_batch = std::max<int64_t>(1, std::min<int64_t>(o.n_prompt, 512)), .kv_f16 = o.kv_f16, .comm = comm});
  std::mt19937 rng(1);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(c.n_vocab - 1));
  std::vector<double> pp, tg;
  s.Forward(tok(rng), 0);  // warm-up: page in the weights
  // The probe runs between the repetitions, so that it sees the same minutes of a machine whose
  // bandwidth drifts (a shared VM's moved by 20-25% within a minute, and a probe run only at the end
  // once read 14 GB/s beside a decode at 22 GB/s: docs/PERFORMANCE.md).
  ReadBandwidthProbe probe(o.threads, o.probe_mib << 20);
  auto probe_twice = [&] {
    for (int i = 0; i < 2; ++i) r.bandwidth_gbps = std::max(r.bandwidth_gbps, probe.Pass());
  };
  probe_twice();
  for (int rep = 0; rep < o.reps; ++rep) {
    if (o.n_prompt > 0) {
      std::vector<int32_t> prompt(static_cast<size_t>(o.n_prompt));
      for (int32_t& t : prompt) t = tok(rng);
      const auto t0 = std::chrono::steady_clock::now();
      s.Forward(prompt, 0);
      pp.push_back(static_cast<double>(o.n_prompt) / Seconds(t0, std::chrono::steady_clock::now()));
    }
    if (o.n_gen > 0) {
      const auto t0 = std::chrono::steady_clock::now();
      int32_t t = tok(rng);
      for (int64_t i = 0; i < o.n_gen; ++i) {
        const float* logits = s.Forward(t, o.n_prompt + i);
        t = static_cast<int32_t>(std::max_element(logits, logits + c.n_vocab) - logits);
        comm->Broadcast(&t, sizeof(t), 0);
      }
      tg.push_back(static_cast<double>(o.n_gen) / Seconds(t0, std::chrono::steady_clock::now()));
    }
    probe_twice();
  }
  if (!pp.empty()) MeanStd(pp, &r.pp, &r.pp_std);
  if (!tg.empty()) MeanStd(tg, &r.tg, &r.tg_std);
  // Totals over the ranks (exact: gathered as doubles and summed in rank order).
  const double mine[3] = {WeightBytesPerToken(model), MatMulOpsPerToken(model), r.bandwidth_gbps};
  std::vector<double> all(3 * static_cast<size_t>(comm->size()));
  comm->AllGatherBytes(mine, sizeof(mine), all.data());
  r.bytes_per_token = r.ops_per_token = r.bandwidth_gbps = 0;
  for (int q = 0; q < comm->size(); ++q) {
    r.bytes_per_token += all[3 * q];
    r.ops_per_token += all[3 * q + 1];
    r.bandwidth_gbps += all[3 * q + 2];
  }
  r.gbps = r.bytes_per_token * r.tg / 1e9;
  r.pp_gops = r.ops_per_token * r.pp / 1e9;
  return r;
}

}  // namespace lowbit

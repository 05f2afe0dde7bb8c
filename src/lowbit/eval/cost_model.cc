#include "lowbit/eval/cost_model.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <span>
#include <vector>

#include "lowbit/kernels/matvec.h"

namespace lowbit {
namespace {

double Bytes(const WeightView& w) {
  return static_cast<double>(*RowBytes(w.type, static_cast<uint64_t>(w.cols)) * static_cast<uint64_t>(w.rows));
}

double Work(const WeightView& w) { return static_cast<double>(w.rows) * static_cast<double>(w.cols); }

// One decode product (or a group of them, one hand-off) as MatMul and MatMulGroup run it.
void AddProducts(ModelWork* work, std::span<const WeightView* const> group) {
  double total = 0;
  for (const WeightView* w : group) total += Work(*w);
  const bool threaded_group = work->threads > 1 && total >= static_cast<double>(kMinThreadedWork);
  if (threaded_group) work->threaded_products += 1;
  for (const WeightView* w : group) {
    // A group handed out as one; otherwise each product decides alone (MatMul).
    const bool threaded = threaded_group || (work->threads > 1 && Work(*w) >= static_cast<double>(kMinThreadedWork));
    if (threaded && !threaded_group) work->threaded_products += 1;
    (threaded ? work->threaded_bytes : work->single_bytes)[w->type] += Bytes(*w);
    work->weight_macs[w->type] += Work(*w);
  }
}

void AddProducts(ModelWork* work, std::initializer_list<const WeightView*> group) {
  AddProducts(work, std::span<const WeightView* const>(group.begin(), group.size()));
}

// Seconds of one decoded token's weight products.
Expected<double> DecodeWeightSeconds(const ModelWork& w, const MachineSpeed& m) {
  const bool cached = w.WeightBytes() <= static_cast<double>(m.llc_bytes);
  double s = 0;
  for (const auto* bucket : {&w.threaded_bytes, &w.single_bytes}) {
    for (const auto& [type, bytes] : *bucket) {
      const TypeSpeed* ts = m.Find(type);
      if (ts == nullptr) return Errorf("no speed is known for {} weights on this machine", TypeInfo(type).name);
      double rate = bucket == &w.threaded_bytes ? ts->stream_gbps : ts->stream1_gbps;
      if (cached) rate = std::max(rate, ts->cached_gbps);
      s += bytes / (rate * 1e9);
    }
  }
  return cached || !(m.decode_efficiency > 0) ? s : s / m.decode_efficiency;
}

// Seconds of a batch of `tokens` through every product (compute-bound: the GEMM rates).
Expected<double> PromptWeightSeconds(const ModelWork& w, const MachineSpeed& m, double tokens) {
  double s = 0;
  for (const auto& [type, macs] : w.weight_macs) {
    const TypeSpeed* ts = m.Find(type);
    if (ts == nullptr) return Errorf("no speed is known for {} weights on this machine", TypeInfo(type).name);
    s += 2 * macs * tokens / (ts->gemm_gops * 1e9);
  }
  return s;
}

double AttentionSeconds(const ModelWork& w, const MachineSpeed& m, double ops, double bytes) {
  const double rate = (w.kv_f16 ? m.attention_f16_gflops : m.attention_gflops) * 1e9;
  const double compute = rate > 0 ? ops / rate : 0;
  const double memory = m.bandwidth_gbps > 0 ? bytes / (m.bandwidth_gbps * 1e9) : 0;
  return std::max(compute, memory);
}

// The fixed costs of one forward step (decode token or prompt batch) outside products and attention.
double FixedStepSeconds(const ModelWork& w, const MachineSpeed& m) {
  return (m.token_us + static_cast<double>(w.n_layer) * m.layer_us) * 1e-6;
}

}  // namespace

const TypeSpeed* MachineSpeed::Find(GgmlType t) const {
  if (auto it = types.find(t); it != types.end()) return &it->second;
  const TypeSpeed* best = nullptr;
  double best_gap = 1e9;
  for (const auto& [type, speed] : types) {
    const double gap = std::fabs(TypeInfo(type).bits_per_weight() - TypeInfo(t).bits_per_weight());
    if (gap < best_gap && TypeInfo(type).quantized == TypeInfo(t).quantized) {
      best_gap = gap;
      best = &speed;
    }
  }
  return best;
}

nlohmann::json MachineSpeed::ToJson() const {
  nlohmann::json types_j = nlohmann::json::object();
  for (const auto& [t, s] : types) {
    types_j[std::string(TypeInfo(t).name)] = {{"stream_gbps", s.stream_gbps}, {"gemm_gops", s.gemm_gops},
                                              {"stream1_gbps", s.stream1_gbps}, {"cached_gbps", s.cached_gbps}};
  }
  return {{"threads", threads}, {"bandwidth_gbps", bandwidth_gbps}, {"attention_gflops", attention_gflops},
          {"attention_f16_gflops", attention_f16_gflops}, {"handoff_us", handoff_us}, {"token_us", token_us}, {"layer_us", layer_us},
          {"decode_efficiency", decode_efficiency},
          {"llc_bytes", llc_bytes}, {"types", types_j}};
}

bool MachineSpeed::FromJson(const nlohmann::json& j, MachineSpeed* out) {
  if (!j.is_object()) return false;
  MachineSpeed m;
  try {
    m.threads = j.at("threads").get<int>();
    m.bandwidth_gbps = j.at("bandwidth_gbps").get<double>();
    m.attention_gflops = j.at("attention_gflops").get<double>();
    m.attention_f16_gflops = j.at("attention_f16_gflops").get<double>();
    m.handoff_us = j.at("handoff_us").get<double>();
    m.token_us = j.value("token_us", 0.0);  // absent in older caches and hand-written descriptions: none
    m.layer_us = j.value("layer_us", 0.0);
    m.decode_efficiency = j.value("decode_efficiency", 1.0);
    m.llc_bytes = j.at("llc_bytes").get<uint64_t>();
    for (const auto& [name, s] : j.at("types").items()) {
      const GgmlTypeInfo* t = FindGgmlTypeByName(name, /*include_internal=*/true);  // W4G128, NF4G64 (folder candidates)
      if (t == nullptr) return false;
      const TypeSpeed ts{s.at("stream_gbps").get<double>(), s.at("gemm_gops").get<double>(), s.at("stream1_gbps").get<double>(),
                         s.at("cached_gbps").get<double>()};
      for (double v : {ts.stream_gbps, ts.gemm_gops, ts.stream1_gbps, ts.cached_gbps}) {
        if (!(v > 0 && v < 1e9)) return false;
      }
      m.types[t->type] = ts;
    }
  } catch (const nlohmann::json::exception&) {
    return false;
  }
  if (m.threads < 1 || !(m.bandwidth_gbps > 0 && m.bandwidth_gbps < 1e6) || m.types.empty()) return false;
  if (!(m.attention_gflops >= 0 && m.attention_f16_gflops >= 0 && m.handoff_us >= 0 && m.handoff_us < 1e6)) return false;
  if (!(m.token_us >= 0 && m.token_us < 1e6 && m.layer_us >= 0 && m.layer_us < 1e6)) return false;
  if (!(m.decode_efficiency >= 0.05 && m.decode_efficiency <= 20)) return false;
  *out = std::move(m);
  return true;
}

double ModelWork::WeightBytes() const {
  double b = 0;
  for (const auto& [t, bytes] : threaded_bytes) b += bytes;
  for (const auto& [t, bytes] : single_bytes) b += bytes;
  return b;
}

double ModelWork::KvBytes(int64_t position) const {
  return static_cast<double>(n_layer) * 2 * static_cast<double>(position + 1) * static_cast<double>(kv_dim) * (kv_f16 ? 2 : 4);
}

double ModelWork::AttentionOps(int64_t position) const {
  return static_cast<double>(n_layer) * static_cast<double>(q_heads) * static_cast<double>(position + 1) *
         static_cast<double>(head_dim) * 4;
}

ModelWork WorkOf(const LlamaModel& m, bool kv_f16, int threads) {
  ModelWork w;
  const LlamaConfig& c = m.config();
  w.threads = std::max(1, threads);
  w.n_layer = c.n_layer;
  w.n_embd = c.n_embd;
  w.q_heads = m.local_heads();
  w.kv_dim = m.local_kv_heads() * c.head_dim;
  w.head_dim = c.head_dim;
  w.kv_f16 = kv_f16;
  // The bytes bench.cc's WeightBytesPerToken counts: every layer matrix and norm, the classifier,
  // and one row of the token embedding (norms and the row are read by the calling thread).
  w.single_bytes[m.output_norm.type] += Bytes(m.output_norm);
  w.single_bytes[m.token_embd.type] += static_cast<double>(*RowBytes(m.token_embd.type, static_cast<uint64_t>(m.token_embd.cols)));
  for (const LlamaModel::Layer& L : m.layers) {
    w.single_bytes[L.attn_norm.type] += Bytes(L.attn_norm) + Bytes(L.ffn_norm);
    AddProducts(&w, {&L.wq, &L.wk, &L.wv});
    AddProducts(&w, {&L.wo});
    if (L.gate_exps.empty()) {
      AddProducts(&w, {&L.gate, &L.up});
      AddProducts(&w, {&L.down});
      continue;
    }
    // A mixture of experts (model/moe.cc): the router; gate and up of the experts a token uses in one
    // hand-off (expert 0 standing for each: they are alike), then their downs; the shared expert.
    AddProducts(&w, {&L.router});
    std::vector<const WeightView*> gate_up, down;
    for (int64_t e = 0; e < c.n_expert_used; ++e) {
      gate_up.insert(gate_up.end(), {&L.gate_exps[0], &L.up_exps[0]});
      down.push_back(&L.down_exps[0]);
    }
    AddProducts(&w, gate_up);
    AddProducts(&w, down);
    if (c.n_ff_shexp > 0) {
      w.single_bytes[L.shexp_gate_inp.type] += Bytes(L.shexp_gate_inp);
      AddProducts(&w, {&L.shexp_gate, &L.shexp_up});
      AddProducts(&w, {&L.shexp_down});
    }
  }
  AddProducts(&w, {&m.output});
  return w;
}

double AllReduceSeconds(double bytes, int ranks, const Network& net) {
  if (ranks <= 1) return 0;
  const double n = ranks, beta = net.bytes_per_s > 0 ? 1 / net.bytes_per_s : 0;
  const double doubling = std::ceil(std::log2(n)) * (net.latency_s + bytes * beta);
  const double ring = 2 * (n - 1) * net.latency_s + 2 * (n - 1) / n * bytes * beta;
  return std::min(doubling, ring);
}

Expected<double> DecodeSeconds(const ModelWork& w, const MachineSpeed& m, int64_t position) {
  LOWBIT_ASSIGN_OR_RETURN(double weights, DecodeWeightSeconds(w, m));
  double handoffs = w.threaded_products;
  // Attention is handed out per layer once the context makes it worth it (model/llama.cc).
  if (w.threads > 1 && w.q_heads * (position + 1) * w.head_dim >= 65536) handoffs += static_cast<double>(w.n_layer);
  return weights + AttentionSeconds(w, m, w.AttentionOps(position), w.KvBytes(position)) + handoffs * m.handoff_us * 1e-6 +
         FixedStepSeconds(w, m);
}

Expected<double> DecodeTokensPerSecond(const ModelWork& w, const MachineSpeed& m, int64_t first, int64_t n) {
  if (n < 1) return Errorf("cannot time {} tokens", n);
  // Decode time is affine in the position, so the mean over [first, first + n) is the time at the
  // middle position.
  LOWBIT_ASSIGN_OR_RETURN(double lo, DecodeSeconds(w, m, first));
  LOWBIT_ASSIGN_OR_RETURN(double hi, DecodeSeconds(w, m, first + n - 1));
  return 2 / (lo + hi);
}

Expected<double> PromptSeconds(const ModelWork& w, const MachineSpeed& m, int64_t n) {
  if (n < 1) return Errorf("cannot time a prompt of {} tokens", n);
  LOWBIT_ASSIGN_OR_RETURN(double weights, PromptWeightSeconds(w, m, static_cast<double>(n)));
  // Token b attends over b + 1 positions: sum over b of AttentionOps(b); the cache is written and
  // read once per layer.
  const double tokens = static_cast<double>(n);
  const double ops = w.AttentionOps(0) * tokens * (tokens + 1) / 2;
  const double bytes = w.KvBytes(n - 1);
  const double handoffs = w.threads > 1 ? 7.0 * static_cast<double>(w.n_layer) + 1 : 0;  // every product, attention, SwiGLU
  // The step's fixed costs once per batch of the prompt (LlamaSession runs up to 512 tokens a step);
  // their per-token part (norms, RoPE over the batch) is small beside the GEMMs of a prompt.
  const double steps = std::ceil(tokens / 512);
  return weights + AttentionSeconds(w, m, ops, bytes) + steps * (handoffs * m.handoff_us * 1e-6 + FixedStepSeconds(w, m));
}

Expected<double> TensorParallelDecodeSeconds(const ModelWork& rank_work, const MachineSpeed& m, int ranks,
                                             const Network& net, int64_t position) {
  LOWBIT_ASSIGN_OR_RETURN(double compute, DecodeSeconds(rank_work, m, position));
  const double hidden = static_cast<double>(rank_work.n_embd) * 4;
  const double reduce = 2 * static_cast<double>(rank_work.n_layer) * AllReduceSeconds(hidden, ranks, net);
  const double token = ranks > 1 ? std::ceil(std::log2(static_cast<double>(ranks))) * net.latency_s : 0;  // broadcast of the sampled token
  return compute + reduce + token;
}

}  // namespace lowbit

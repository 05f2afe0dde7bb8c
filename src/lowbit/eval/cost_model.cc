#include "lowbit/eval/cost_model.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <set>
#include <utility>
#include <span>
#include <vector>

#include "lowbit/kernels/matvec.h"
#include "lowbit/numeric/interleave.h"

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
  std::vector<ProductShape> shapes;
  for (const WeightView* w : group) {
    if (w->rows > 0 && w->cols > 0) shapes.push_back(ProductShape{w->type, w->rows, w->cols, 1});
  }
  if (!shapes.empty()) {
    auto it = std::find_if(work->decode_groups.begin(), work->decode_groups.end(), [&](const auto& g) { return g.products == shapes; });
    if (it != work->decode_groups.end()) it->count += 1;
    else work->decode_groups.push_back(ModelWork::DecodeGroup{shapes, 1});
  }
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

// A product of a prefill step (LlamaSession runs each on its own: MatMulGroup hands a batch's
// products out one by one); products of one shape are counted together.
void AddPromptProduct(ModelWork* work, const WeightView& w, double share = 1, bool last_token = false) {
  if (w.rows == 0 || w.cols == 0) return;  // a rank without this product runs nothing
  for (PromptProduct& p : work->prompt_products) {
    if (p.type == w.type && p.rows == w.rows && p.cols == w.cols && p.share == share && p.last_token == last_token) {
      p.count += 1;
      return;
    }
  }
  work->prompt_products.push_back(PromptProduct{w.type, w.rows, w.cols, 1, share, last_token});
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
  t = StoredTypeOf(t);  // an interleaved weight (Q4_Kx8) is timed as its file type, which the probes run interleaved
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
      const GgmlTypeInfo* t = FindGgmlTypeByName(name, /*include_internal=*/true);  // W4G128, NF4G64x2 (folder candidates)
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
    for (const WeightView* v : {&L.wq, &L.wk, &L.wv, &L.wo}) AddPromptProduct(&w, *v);
    if (L.gate_exps.empty()) {
      AddProducts(&w, {&L.gate, &L.up});
      AddProducts(&w, {&L.down});
      for (const WeightView* v : {&L.gate, &L.up, &L.down}) AddPromptProduct(&w, *v);
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
    // A prompt's tokens spread over every expert: each runs the tokens routed to it.
    AddPromptProduct(&w, L.router);
    const double share = static_cast<double>(c.n_expert_used) / static_cast<double>(std::max<int64_t>(1, c.n_expert));
    for (const auto* experts : {&L.gate_exps, &L.up_exps, &L.down_exps}) {
      for (const WeightView& e : *experts) AddPromptProduct(&w, e, share);
    }
    if (c.n_ff_shexp > 0) {
      w.single_bytes[L.shexp_gate_inp.type] += Bytes(L.shexp_gate_inp);
      AddProducts(&w, {&L.shexp_gate, &L.shexp_up});
      AddProducts(&w, {&L.shexp_down});
      for (const WeightView* v : {&L.shexp_gate, &L.shexp_up, &L.shexp_down}) AddPromptProduct(&w, *v);
    }
  }
  AddProducts(&w, {&m.output});
  AddPromptProduct(&w, m.output, 1, /*last_token=*/true);
  return w;
}

double AllReduceSeconds(double bytes, int ranks, const Network& net) {
  if (ranks <= 1) return 0;
  const double n = ranks, beta = net.bytes_per_s > 0 ? 1 / net.bytes_per_s : 0;
  const double doubling = std::ceil(std::log2(n)) * (net.latency_s + bytes * beta);
  const double ring = 2 * (n - 1) * net.latency_s + 2 * (n - 1) / n * bytes * beta;
  return std::min(doubling, ring);
}

DecodeGroups DecodeGroupsOf(const ModelWork& w, const MachineSpeed& m) {
  DecodeGroups out;
  out.streamed = w.WeightBytes() > static_cast<double>(m.llc_bytes);
  // A model read from cache keeps the cached rates: its step is mostly the fixed costs, which
  // MeasureFixedCosts takes as what those rates leave unexplained, so timed groups on top of them
  // counted part of the step twice (docs/PERFORMANCE.md).
  if (!out.streamed) return out;
  for (const ModelWork::DecodeGroup& g : w.decode_groups) out.groups.push_back(g.products);
  return out;
}

namespace {

// A decode step's product groups at their timings (each with its hand-off), or < 0 where a group
// is not timed.
double TimedDecodeWeightSeconds(const ModelWork& w, const MachineSpeed& m) {
  if (w.decode_groups.empty()) return -1;
  double s = 0;
  for (const ModelWork::DecodeGroup& g : w.decode_groups) {
    auto it = m.group_s.find(g.products);
    if (it == m.group_s.end()) return -1;
    s += g.count * it->second;
  }
  return s;
}

}  // namespace

Expected<double> DecodeSeconds(const ModelWork& w, const MachineSpeed& m, int64_t position) {
  double weights = TimedDecodeWeightSeconds(w, m);
  double handoffs = weights >= 0 ? 0 : w.threaded_products;
  if (weights < 0) {
    LOWBIT_ASSIGN_OR_RETURN(weights, DecodeWeightSeconds(w, m));
  }
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

namespace {

// A prompt of n tokens as LlamaSession runs it: steps of up to kPromptStep tokens, (start, tokens).
std::vector<std::pair<int64_t, int64_t>> PromptSteps(int64_t n) {
  std::vector<std::pair<int64_t, int64_t>> steps;
  for (int64_t start = 0; start < n; start += kPromptStep) steps.emplace_back(start, std::min(kPromptStep, n - start));
  return steps;
}

int64_t ProductBatch(const PromptProduct& p, int64_t tokens) {
  return p.last_token ? 1 : std::max<int64_t>(1, std::llround(static_cast<double>(tokens) * p.share));
}

AttentionShape AttentionShapeOf(const ModelWork& w, int64_t start, int64_t tokens) {
  const int64_t kv_heads = std::max<int64_t>(1, w.head_dim > 0 ? w.kv_dim / w.head_dim : 1);
  return AttentionShape{.kv_f16 = w.kv_f16, .kv_heads = kv_heads, .group = std::max<int64_t>(1, w.q_heads / kv_heads),
                        .head_dim = w.head_dim, .start = start, .tokens = tokens};
}

// One product of `batch` tokens: as measured at its shape; else its multiply-adds at the type's GEMM
// rate, or for one token its bytes at the stream rate, plus its hand-offs (MatMul's rule).
Expected<double> ProductSeconds(const PromptProduct& p, int64_t batch, const ModelWork& w, const MachineSpeed& m) {
  if (auto it = m.product_s.find(ProductShape{p.type, p.rows, p.cols, batch}); it != m.product_s.end()) return it->second;
  const TypeSpeed* ts = m.Find(p.type);
  if (ts == nullptr) return Errorf("no speed is known for {} weights on this machine", TypeInfo(p.type).name);
  const double work = static_cast<double>(p.rows) * static_cast<double>(p.cols) * static_cast<double>(batch);
  const bool threaded = w.threads > 1 && work >= static_cast<double>(kMinThreadedWork);
  const double handoff = threaded ? m.handoff_us * 1e-6 : 0;
  if (batch > 1) return 2 * work / (ts->gemm_gops * 1e9) + 2 * handoff;  // conversion and rows: two hand-offs
  double rate = threaded ? ts->stream_gbps : ts->stream1_gbps;
  if (w.WeightBytes() <= static_cast<double>(m.llc_bytes)) rate = std::max(rate, ts->cached_gbps);
  const double bytes = static_cast<double>(*RowBytes(p.type, static_cast<uint64_t>(p.cols)) * static_cast<uint64_t>(p.rows));
  return bytes / (rate * 1e9) + handoff;
}

// The prompt without per-product work (a ModelWork described by hand): every multiply-add at its
// type's GEMM rate, attention at the kernel's rate, 7 hand-offs a layer.
Expected<double> PromptSecondsFromMacs(const ModelWork& w, const MachineSpeed& m, int64_t n) {
  LOWBIT_ASSIGN_OR_RETURN(double weights, PromptWeightSeconds(w, m, static_cast<double>(n)));
  // Token b attends over b + 1 positions: sum over b of AttentionOps(b); the cache is written and
  // read once per layer.
  const double tokens = static_cast<double>(n);
  const double ops = w.AttentionOps(0) * tokens * (tokens + 1) / 2;
  const double bytes = w.KvBytes(n - 1);
  const double handoffs = w.threads > 1 ? 7.0 * static_cast<double>(w.n_layer) + 1 : 0;  // every product, attention, SwiGLU
  const double steps = std::ceil(tokens / static_cast<double>(kPromptStep));
  return weights + AttentionSeconds(w, m, ops, bytes) + steps * (handoffs * m.handoff_us * 1e-6 + FixedStepSeconds(w, m));
}

}  // namespace

Expected<double> PromptSeconds(const ModelWork& w, const MachineSpeed& m, int64_t n) {
  if (n < 1) return Errorf("cannot time a prompt of {} tokens", n);
  if (w.prompt_products.empty()) return PromptSecondsFromMacs(w, m, n);
  const double layers = static_cast<double>(w.n_layer);
  double s = 0;
  for (const auto& [start, tokens] : PromptSteps(n)) {
    for (const PromptProduct& p : w.prompt_products) {
      LOWBIT_ASSIGN_OR_RETURN(double one, ProductSeconds(p, ProductBatch(p, tokens), w, m));
      s += p.count * one;
    }
    const AttentionShape shape = AttentionShapeOf(w, start, tokens);
    if (auto it = m.attention_s.find(shape); it != m.attention_s.end()) {
      s += layers * it->second;
    } else {
      // Token b attends over b + 1 positions; the cache is written and read once per layer.
      const double t = static_cast<double>(tokens), first = static_cast<double>(start);
      s += AttentionSeconds(w, m, w.AttentionOps(0) * t * (2 * first + t + 1) / 2, w.KvBytes(start + tokens - 1));
    }
    // Attention and SwiGLU are handed out once a layer (the products' hand-offs are in their
    // times), and the step's fixed costs once.
    s += (w.threads > 1 ? 2 * layers * m.handoff_us * 1e-6 : 0) + FixedStepSeconds(w, m);
  }
  return s;
}

PromptShapes PromptShapesOf(const ModelWork& w, int64_t n) {
  std::set<ProductShape> products;
  std::set<AttentionShape> attention;
  for (const auto& [start, tokens] : PromptSteps(n)) {
    for (const PromptProduct& p : w.prompt_products) {
      const int64_t batch = ProductBatch(p, tokens);
      if (batch > 1) products.insert(ProductShape{p.type, p.rows, p.cols, batch});
    }
    if (w.n_layer > 0 && w.head_dim > 0 && w.q_heads > 0) attention.insert(AttentionShapeOf(w, start, tokens));
  }
  return PromptShapes{{products.begin(), products.end()}, {attention.begin(), attention.end()}};
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

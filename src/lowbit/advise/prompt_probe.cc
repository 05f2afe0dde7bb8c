#include "lowbit/advise/prompt_probe.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include <fmt/format.h>

#include "lowbit/advise/probe_cache.h"
#include "lowbit/advise/probe_rows.h"
#include "lowbit/base/aligned_buffer.h"
#include "lowbit/base/progress.h"
#include "lowbit/base/thread_pool.h"
#include "lowbit/kernels/dot.h"
#include "lowbit/kernels/matvec.h"

namespace lowbit {
namespace {

constexpr int kCacheVersion = 12;  // 4: rows ImageRowStep apart (model/shard.h); 5: Q4_K interleaved (numeric/interleave.h); 6: Q5_K too; 7: the 32-element types too; 8: Q2_K too; 9: Q3_K too; 10: IQ4_XS too; 11: Q6_K too; 12: float products on FMA
constexpr double kPassSeconds = 0.02;
constexpr int kPasses = 3;
constexpr size_t kMaxProbeBytes = size_t{32} << 20;   // weights of one timed product
constexpr size_t kStreamSpan = size_t{1} << 30;       // what a streamed decode group's calls cycle through
constexpr double kMaxAttentionOps = 4e8;               // one timed attention call set (a few ms)

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Seconds of one call of `fn`: the median of `passes` passes of as many calls as fill kPassSeconds,
// after a warm-up call.
template <typename Fn>
double TimeCalls(Fn&& fn, int passes = kPasses) {
  fn();
  std::vector<double> per_call;
  for (int pass = 0; pass < passes; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    int calls = 0;
    double s = 0;
    do {
      fn();
      ++calls;
      s = Seconds(t0);
    } while (s < kPassSeconds);
    per_call.push_back(s / calls);
  }
  std::sort(per_call.begin(), per_call.end());
  return per_call[per_call.size() / 2];
}

// A product's seconds at `rows` rows from two timings, t_a at rows_a and t_b at rows_b (rows_b >
// rows_a, in rows of per-row work): t(rows) = fixed + rows * per_row. Noise larger than the
// difference (per_row <= 0): no fixed part.
double ExtendInRows(double t_a, int64_t rows_a, double t_b, int64_t rows_b, int64_t rows) {
  double per_row = rows_b > rows_a ? (t_b - t_a) / static_cast<double>(rows_b - rows_a) : 0;
  if (!(per_row > 0)) per_row = t_b / static_cast<double>(rows_b);
  const double fixed = std::max(0.0, t_b - per_row * static_cast<double>(rows_b));
  return fixed + per_row * static_cast<double>(rows);
}

std::string ProductKey(GgmlType type, int64_t rows, int64_t cols, int64_t batch) {
  return fmt::format("P|{}|{}|{}|{}", TypeInfo(type).name, rows, cols, batch);
}

std::string AttentionKey(const AttentionShape& a) {
  return fmt::format("A|{}|{}|{}|{}|{}|{}", a.kv_f16 ? "f16" : "f32", a.kv_heads, a.group, a.head_dim, a.start, a.tokens);
}

}  // namespace

struct PromptProbe::Impl {
  int threads;
  Isa isa;
  bool use_cache, show_progress;
  const DotKernels& k;
  ThreadPool pool;
  MatMulScratch scratch;
  std::string key, path;
  bool loaded = false;
  std::map<std::string, double> timed;  // ProductKey / AttentionKey -> seconds of one call
  // Reused between timings of the same type and widths.
  AlignedBuffer w;
  GgmlType w_type = GgmlType::kF32;
  int64_t w_cols = 0;
  size_t w_bytes = 0;
  std::vector<float> x, y;
  int64_t x_cols = 0, x_batch = 0;

  Impl(int t, Isa i, bool cache, bool progress)
      : threads(t), isa(std::min(i, MaxSupportedIsa())), use_cache(cache), show_progress(progress), k(DotKernelsFor(isa)), pool(t) {}

  void Load() {
    if (loaded) return;
    loaded = true;
    key = ProbeCacheKey(kCacheVersion, threads, isa);
    path = ProbeCachePath("prompt_shapes.json");
    if (!use_cache || key.empty() || path.empty()) return;
    const nlohmann::json all = ReadProbeCache(path);
    if (!all.contains(key) || !all[key].is_object()) return;
    for (const auto& [name, v] : all[key].items()) {
      if (v.is_number() && v.get<double>() > 0 && v.get<double>() < 1e3) timed[name] = v.get<double>();
    }
  }

  void Save() {
    if (key.empty() || path.empty()) return;
    WriteProbeCache(path, key, nlohmann::json(timed));
  }

  // Rows a product is timed at: as many as one call of about kCallSeconds takes at the type's GEMM
  // rate (`gops`, the coarse probe's), between kMinProbeRows (enough 16-row chunks for every thread)
  // and kMaxProbeRows, with at most kMaxProbeBytes of weights. A product no taller is timed whole.
  int64_t ProbeRows(GgmlType type, int64_t cols, int64_t batch, double gops) const {
    constexpr double kCallSeconds = 0.01;
    const int64_t row_bytes = static_cast<int64_t>(*RowBytes(type, static_cast<uint64_t>(cols)));
    const int64_t lo = std::max<int64_t>(kMinProbeRows, int64_t{32} * threads);
    const double by_time = gops > 0 ? kCallSeconds * gops * 1e9 / (2.0 * static_cast<double>(cols) * static_cast<double>(batch)) : 0;
    const int64_t want = std::clamp<int64_t>(static_cast<int64_t>(by_time), lo, std::max(lo, kMaxProbeRows));
    const int64_t fit = static_cast<int64_t>(kMaxProbeBytes) / row_bytes;
    return std::max<int64_t>(32, std::min(want, fit) / 16 * 16);
  }

  // Seconds of one product of `rows` rows (cached or timed).
  double Product(GgmlType type, int64_t rows, int64_t cols, int64_t batch) {
    const std::string name = ProductKey(type, rows, cols, batch);
    if (auto it = timed.find(name); it != timed.end()) return it->second;
    const uint64_t step = ProbeRowStep(type, cols);
    const size_t bytes = static_cast<size_t>(rows) * step;
    const GgmlType run = ProbeRunType(k, type, rows, cols);
    if (w_type != run || w_cols != cols || w_bytes < bytes) {
      w.Resize(bytes);
      FillProbeRowsAt(type, cols, rows, w.data(), run);
      w_type = run;
      w_cols = cols;
      w_bytes = bytes;
    }
    if (x_cols != cols || x_batch != batch) {
      // Values of N(0, 1) from a short table, tiled at an odd period (conversion speed does not depend on them).
      std::mt19937 rng(3);
      std::normal_distribution<float> normal(0, 1);
      std::vector<float> table(4093);
      for (float& v : table) v = normal(rng);
      x.resize(static_cast<size_t>(batch * cols));
      for (size_t i = 0; i < x.size(); ++i) x[i] = table[i % table.size()];
      x_cols = cols;
      x_batch = batch;
    }
    y.resize(static_cast<size_t>(batch * rows));
    const MatMulArgs a{.type = run, .w = w.data(), .rows = rows, .cols = cols, .row_stride = step, .x = x.data(), .batch = batch, .y = y.data()};
    const double s = TimeCalls([&] { MatMul(k, a, &pool, &scratch); });
    timed[name] = s;
    return s;
  }

  // A tall product from two timings: kChunk rows (the fixed part, and one chunk on one thread while
  // the others wait) and ProbeRows (the fixed part and ProbeRows / threads rows a thread):
  // t(kChunk) = fixed + kChunk * threads * per_row, t(p) = fixed + p * per_row.
  double Shape(const ProductShape& s, double gops) {
    const int64_t p = ProbeRows(s.type, s.cols, s.batch, gops);
    if (s.rows <= p) return Product(s.type, s.rows, s.cols, s.batch);
    constexpr int64_t kChunk = 16;  // MatMul's prefill grain
    const double t_chunk = Product(s.type, kChunk, s.cols, s.batch), t_full = Product(s.type, p, s.cols, s.batch);
    return ExtendInRows(t_chunk, kChunk * threads, t_full, p, s.rows);
  }

  // Seconds of one decode step's group of products (MatMulGroup on one token, as LlamaSession runs
  // Q/K/V or gate/up), streamed from memory: successive calls read successive copies of the group's
  // weights in a buffer of kStreamSpan bytes, or 16 x `llc` where that is more (2 MiB pages, as a
  // model read into memory), so no call finds its rows in a cache. (A span of 4 x the 32 MiB cache
  // this VM reports still read 10-15% faster than memory: 1 GiB streamed at 55 GB/s on 2 threads,
  // 128 MiB at 61, 32 MiB at 104; docs/PERFORMANCE.md.) A group of more than kMaxProbeBytes is its
  // products timed one by one, each extended linearly from two heights (each then counts its own
  // hand-off: ~1 us against milliseconds).
  double Group(const std::vector<ProductShape>& g, uint64_t llc) {
    std::string name("G");
    size_t total = 0;
    std::vector<size_t> offset;  // of each product's weights in a copy of the group
    int64_t cols = 0;
    for (const ProductShape& s : g) {
      name.append("|").append(ProductKey(s.type, s.rows, s.cols, 1));
      offset.push_back(total);
      total += static_cast<size_t>(s.rows) * ProbeRowStep(s.type, s.cols);
      cols = std::max(cols, s.cols);
    }
    if (auto it = timed.find(name); it != timed.end()) return it->second;
    double seconds = 0;
    if (total > kMaxProbeBytes) {
      for (const ProductShape& s : g) seconds += StreamedShape(s, llc);
    } else {
      const size_t copies = std::max<size_t>(2, (std::max<size_t>(kStreamSpan, 16 * llc) + total - 1) / total);
      ProbeBuffer buf(copies * total, true);
      if (buf.data() == nullptr) return 0;  // no memory for it: the group stays untimed
      std::vector<GgmlType> run(g.size());
      for (size_t j = 0; j < g.size(); ++j) {
        run[j] = ProbeRunType(k, g[j].type, g[j].rows, g[j].cols);
        FillProbeRowsAt(g[j].type, g[j].cols, g[j].rows, buf.data() + offset[j], run[j]);
      }
      for (size_t c = 1; c < copies; ++c) std::memcpy(buf.data() + c * total, buf.data(), total);
      const std::vector<float> one(static_cast<size_t>(cols), 0.5f);
      std::vector<std::vector<float>> out(g.size());
      std::vector<MatMulArgs> args(g.size());
      for (size_t j = 0; j < g.size(); ++j) {
        out[j].resize(static_cast<size_t>(g[j].rows));
        args[j] = MatMulArgs{.type = run[j], .rows = g[j].rows, .cols = g[j].cols, .row_stride = ProbeRowStep(g[j].type, g[j].cols),
                             .x = one.data(), .batch = 1, .y = out[j].data()};
      }
      size_t next = 0;
      // Five passes: a decode group takes 5-700 us, and one time slice lost to the host in a pass of
      // short calls moved a median of three by 5x (Q4_0 256 x 2048: 75 us against 10 us).
      seconds = TimeCalls(
          [&] {
            const uint8_t* base = buf.data() + (next++ % copies) * total;
            for (size_t j = 0; j < g.size(); ++j) args[j].w = base + offset[j];
            MatMulGroup(k, args, &pool, &scratch);
          },
          5);
    }
    timed[name] = seconds;
    return seconds;
  }

  // One streamed product of a group too large to copy whole: timed at kMaxProbeBytes of its rows and
  // at a small height, extended linearly.
  double StreamedShape(const ProductShape& s, uint64_t llc) {
    const int64_t row_bytes = static_cast<int64_t>(ProbeRowStep(s.type, s.cols));
    const int64_t p = std::max<int64_t>(64, static_cast<int64_t>(kMaxProbeBytes) / row_bytes / 16 * 16);
    if (s.rows <= p) return Group({s}, llc);
    const int64_t small = std::min<int64_t>(p / 2, int64_t{64} * threads);
    const double t_small = Group({ProductShape{s.type, small, s.cols, 1}}, llc);
    const double t_p = Group({ProductShape{s.type, p, s.cols, 1}}, llc);
    return ExtendInRows(t_small, small, t_p, p, s.rows);
  }

  // Seconds of one layer's attention over the step `a` describes.
  double Attention(const AttentionShape& a) {
    const std::string name = AttentionKey(a);
    if (auto it = timed.find(name); it != timed.end()) return it->second;
    const int64_t hd = a.head_dim, kv_dim = a.kv_heads * hd, q_dim = kv_dim * a.group, n_pos = a.start + a.tokens;
    const size_t el = a.kv_f16 ? 2 : 4;
    std::vector<uint8_t> kv(static_cast<size_t>(2 * n_pos * kv_dim) * el);
    std::mt19937 rng(5);
    std::uniform_int_distribution<int> byte(0, 255);
    for (size_t i = 0; i < kv.size(); i += el) {
      if (a.kv_f16) {
        const uint16_t h = static_cast<uint16_t>(0x3000 | (byte(rng) << 1));  // small normal fp16 values
        std::memcpy(kv.data() + i, &h, 2);
      } else {
        const float f = static_cast<float>(byte(rng)) / 256.0f - 0.5f;
        std::memcpy(kv.data() + i, &f, 4);
      }
    }
    const uint8_t* kc = kv.data();
    const uint8_t* vc = kv.data() + static_cast<size_t>(n_pos * kv_dim) * el;
    const uint64_t stride = static_cast<uint64_t>(kv_dim) * el;
    // Every k-th token when the whole step is long; the time scales by the positions read.
    double total_pos = 0;
    for (int64_t b = 0; b < a.tokens; ++b) total_pos += static_cast<double>(a.start + b + 1);
    const double ops = total_pos * static_cast<double>(q_dim) * 4;
    const int64_t every = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(ops / kMaxAttentionOps)));
    std::vector<int64_t> pos;  // the sampled tokens' positions
    double sampled_pos = 0;
    for (int64_t b = every - 1; b < a.tokens; b += every) {
      pos.push_back(a.start + b);
      sampled_pos += static_cast<double>(a.start + b + 1);
    }
    std::vector<float> q(static_cast<size_t>(static_cast<int64_t>(pos.size()) * q_dim), 0.01f), out(q.size());
    const AttendFn attend = k.ForAttend(a.kv_f16);
    const int64_t kv_heads = a.kv_heads, group = a.group;
    auto run = [&](size_t begin, size_t end) {
      thread_local std::vector<float> att;
      if (att.size() < static_cast<size_t>(group * n_pos)) att.resize(static_cast<size_t>(group * n_pos));
      for (size_t item = begin; item < end; ++item) {
        const int64_t i = static_cast<int64_t>(item) / kv_heads, hk = static_cast<int64_t>(item) % kv_heads;
        const uint64_t head_off = static_cast<uint64_t>(hk * hd) * el;
        attend(q.data() + i * q_dim + hk * group * hd, group, kc + head_off, vc + head_off, stride, pos[static_cast<size_t>(i)] + 1, hd,
               0.088f, att.data(), out.data() + i * q_dim + hk * group * hd);
      }
    };
    const size_t items = pos.size() * static_cast<size_t>(kv_heads);
    // LlamaSession::Attention's rule, on the whole step: handed out when there is enough of it.
    const bool threaded = pool.size() > 1 && static_cast<double>(kv_heads * group * hd) * total_pos >= 65536.0;
    const double s = TimeCalls([&] {
                       if (threaded) pool.ParallelFor(items, run, 1);
                       else run(0, items);
                     }) *
                     total_pos / sampled_pos;
    timed[name] = s;
    return s;
  }
};

PromptProbe::PromptProbe(int threads, Isa isa, bool use_cache, bool show_progress)
    : impl_(std::make_unique<Impl>(std::max(1, threads), isa, use_cache, show_progress)) {}

PromptProbe::~PromptProbe() = default;

Status PromptProbe::Time(const PromptShapes& shapes, MachineSpeed* m) {
  Impl& p = *impl_;
  p.Load();
  std::vector<ProductShape> products;
  for (const ProductShape& s : shapes.products) {
    if (!m->product_s.contains(s) && p.k.For(s.type) != nullptr && CanFillProbeRows(s.type)) products.push_back(s);
  }
  std::vector<AttentionShape> attention;
  for (const AttentionShape& a : shapes.attention) {
    if (!m->attention_s.contains(a) && a.kv_heads > 0 && a.group > 0 && a.head_dim > 0 && a.tokens > 0) attention.push_back(a);
  }
  const size_t before = p.timed.size();
  {
    Progress progress("timing the prompt at the model's shapes", products.size() + attention.size(), 0, p.show_progress);
    size_t done = 0;
    for (const ProductShape& s : products) {
      const TypeSpeed* ts = m->Find(s.type);
      m->product_s[s] = p.Shape(s, ts != nullptr ? ts->gemm_gops : 0);
      progress.Update(++done, 0, fmt::format("{} {}x{}", TypeInfo(s.type).name, s.rows, s.cols));
    }
    for (const AttentionShape& a : attention) {
      m->attention_s[a] = p.Attention(a);
      progress.Update(++done, 0, "attention");
    }
    progress.Finish();
  }
  if (p.timed.size() != before) p.Save();
  return OkStatus();
}

Status PromptProbe::TimeDecode(const DecodeGroups& d, MachineSpeed* m) {
  Impl& p = *impl_;
  p.Load();
  if (!d.streamed) return OkStatus();
  std::vector<const std::vector<ProductShape>*> groups;
  for (const auto& g : d.groups) {
    bool ok = !g.empty() && !m->group_s.contains(g);
    for (const ProductShape& s : g) ok = ok && p.k.For(s.type) != nullptr && CanFillProbeRows(s.type);
    if (ok) groups.push_back(&g);
  }
  const size_t before = p.timed.size();
  {
    Progress progress("timing the decode at the model's shapes", groups.size(), 0, p.show_progress);
    size_t done = 0;
    for (const auto* g : groups) {
      const double t = p.Group(*g, m->llc_bytes);
      if (t > 0) m->group_s[*g] = t;
      progress.Update(++done, 0, fmt::format("{} x {}", TypeInfo(g->front().type).name, g->size()));
    }
    progress.Finish();
  }
  if (p.timed.size() != before) p.Save();
  return OkStatus();
}

}  // namespace lowbit

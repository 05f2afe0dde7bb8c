#include "lowbit/train/ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "lowbit/base/check.h"
#include "lowbit/kernels/dot.h"
#include "lowbit/kernels/gemm.h"
#include "lowbit/kernels/softmax.h"

namespace lowbit::train {
namespace {

// Runs fn over [0, n) on the pool (or inline), in chunks of about `grain`.
template <typename F>
void Rows(ThreadPool* pool, int64_t n, int64_t grain, F&& fn) {
  if (n <= 0) return;
  if (pool == nullptr || pool->size() == 1 || n <= grain) {
    fn(size_t{0}, static_cast<size_t>(n));
    return;
  }
  pool->ParallelFor(static_cast<size_t>(n), fn, static_cast<size_t>(std::max<int64_t>(1, grain)));
}

// Rows per chunk so that a chunk holds about 16K values.
int64_t GrainFor(int64_t width) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, width)); }

}  // namespace

// ---- RMSNorm

void RmsNormForward(const float* x, const float* w, int64_t rows, int64_t n, float eps, float* y, float* rstd,
                    ThreadPool* pool) {
  Rows(pool, rows, GrainFor(n), [&](size_t b, size_t e) {
    for (size_t r = b; r < e; ++r) {
      const float* xr = x + r * n;
      double ss = 0;  // as model/llama.cc
      for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(xr[i]) * xr[i];
      const float s = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(n)) + eps);
      rstd[r] = s;
      float* yr = y + r * n;
      for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] * s * w[i];
    }
  });
}

void RmsNormBackward(const float* x, const float* w, const float* rstd, const float* dy, int64_t rows, int64_t n,
                     float* dx, bool accumulate_dx, float* dw, ThreadPool* pool) {
  // dx_j = r (dy_j w_j - x_j r^2 / n * sum_k dy_k w_k x_k)
  Rows(pool, rows, GrainFor(n), [&](size_t b, size_t e) {
    for (size_t r = b; r < e; ++r) {
      const float* xr = x + r * n;
      const float* dyr = dy + r * n;
      float* dxr = dx + r * n;
      double dot = 0;
      for (int64_t i = 0; i < n; ++i) dot += static_cast<double>(dyr[i]) * w[i] * xr[i];
      const float s = rstd[r];
      const float c = static_cast<float>(dot) * s * s / static_cast<float>(n);
      for (int64_t i = 0; i < n; ++i) {
        const float g = s * (dyr[i] * w[i] - xr[i] * c);
        dxr[i] = accumulate_dx ? dxr[i] + g : g;
      }
    }
  });
  if (dw == nullptr) return;
  // dw_j += sum_r dy_rj x_rj rstd_r, split over columns so that each thread owns its dw entries.
  constexpr int64_t kCols = 64;
  Rows(pool, (n + kCols - 1) / kCols, 1, [&](size_t b, size_t e) {
    for (size_t blk = b; blk < e; ++blk) {
      const int64_t j0 = static_cast<int64_t>(blk) * kCols, j1 = std::min(n, j0 + kCols);
      float acc[kCols] = {};
      for (int64_t r = 0; r < rows; ++r) {
        const float s = rstd[r];
        for (int64_t j = j0; j < j1; ++j) acc[j - j0] += dy[r * n + j] * x[r * n + j] * s;
      }
      for (int64_t j = j0; j < j1; ++j) dw[j] += acc[j - j0];
    }
  });
}

// ---- RoPE

RopeTable RopeTable::Make(int64_t n_pos, int64_t rope_dim, float base, bool neox) {
  RopeTable t;
  t.rope_dim = rope_dim;
  t.neox = neox;
  const int64_t half = rope_dim / 2;
  t.cos.resize(static_cast<size_t>(n_pos * half));
  t.sin.resize(static_cast<size_t>(n_pos * half));
  for (int64_t p = 0; p < n_pos; ++p) {
    for (int64_t i = 0; i < half; ++i) {
      const double theta = static_cast<double>(p) * std::pow(static_cast<double>(base),
                                                              -2.0 * static_cast<double>(i) / static_cast<double>(rope_dim));
      t.cos[p * half + i] = static_cast<float>(std::cos(theta));
      t.sin[p * half + i] = static_cast<float>(std::sin(theta));
    }
  }
  return t;
}

namespace {
void Rotate(const RopeTable& t, float* x, int64_t rows, int64_t heads, int64_t hd, const int32_t* pos, float sign) {
  const int64_t half = t.rope_dim / 2;
  const int64_t stride = t.neox ? half : 1, step = t.neox ? 1 : 2;
  for (int64_t r = 0; r < rows; ++r) {
    const float* cs = t.cos.data() + pos[r] * half;
    const float* sn = t.sin.data() + pos[r] * half;
    for (int64_t h = 0; h < heads; ++h) {
      float* v = x + (r * heads + h) * hd;
      for (int64_t i = 0; i < half; ++i) {
        float* p0 = v + i * step;
        float* p1 = p0 + stride;
        const float a = *p0, c = *p1, s = sign * sn[i];
        *p0 = a * cs[i] - c * s;
        *p1 = a * s + c * cs[i];
      }
    }
  }
}
}  // namespace

void RopeForward(const RopeTable& t, float* x, int64_t rows, int64_t heads, int64_t hd, const int32_t* pos) {
  Rotate(t, x, rows, heads, hd, pos, 1.0f);
}

void RopeBackward(const RopeTable& t, float* dx, int64_t rows, int64_t heads, int64_t hd, const int32_t* pos) {
  Rotate(t, dx, rows, heads, hd, pos, -1.0f);
}

// ---- Attention: per (sequence, KV head) task, the products are single-threaded GEMMs on the
// head's rows (strided views into q/k/v), so they run on the vector micro-kernel; the causal mask
// costs the upper triangle's multiplications by zero.

namespace {
struct HeadViews {
  const AttnShape& s;
  int64_t qd, kvd, group;
  HeadViews(const AttnShape& sh) : s(sh), qd(sh.n_head * sh.hd), kvd(sh.n_kv * sh.hd), group(sh.n_head / sh.n_kv) {}
  int64_t QOff(int64_t seq, int64_t h) const { return seq * s.T * qd + h * s.hd; }
  int64_t KvOff(int64_t seq, int64_t kvh) const { return seq * s.T * kvd + kvh * s.hd; }
  int64_t POff(int64_t seq, int64_t h) const { return (seq * s.n_head + h) * s.T * s.T; }
};

// Row i of scores (already scaled) -> causal softmax over j <= i; entries past i become 0.
void SoftmaxCausal(float* row, int64_t i, int64_t T) {
  float mx = row[0];
  for (int64_t j = 1; j <= i; ++j) mx = std::max(mx, row[j]);
  float sum = 0.0f;
  for (int64_t j = 0; j <= i; ++j) {
    row[j] = softmax::Exp(row[j] - mx);
    sum += row[j];
  }
  const float inv = 1.0f / sum;
  for (int64_t j = 0; j <= i; ++j) row[j] *= inv;
  for (int64_t j = i + 1; j < T; ++j) row[j] = 0.0f;
}
}  // namespace

void AttentionForward(const AttnShape& s, const float* q, const float* k, const float* v, float* out, float* probs,
                      ThreadPool* pool) {
  LOWBIT_CHECK(s.n_kv > 0 && s.n_head % s.n_kv == 0);
  const HeadViews hv(s);
  const int64_t T = s.T;
  Rows(pool, s.seqs * s.n_kv, 1, [&](size_t b, size_t e) {
    for (size_t task = b; task < e; ++task) {
      const int64_t seq = static_cast<int64_t>(task) / s.n_kv, kvh = static_cast<int64_t>(task) % s.n_kv;
      for (int64_t g = 0; g < hv.group; ++g) {
        const int64_t h = kvh * hv.group + g;
        float* p = probs + hv.POff(seq, h);
        // S = Q_h K^T
        GemmF32({.m = T, .n = T, .k = s.hd, .a = q + hv.QOff(seq, h), .lda = hv.qd, .b = k + hv.KvOff(seq, kvh),
                 .ldb = hv.kvd, .b_trans = true, .c = p, .ldc = T}, nullptr);
        for (int64_t i = 0; i < T; ++i) {
          float* row = p + i * T;
          for (int64_t j = 0; j <= i; ++j) row[j] *= s.scale;
          SoftmaxCausal(row, i, T);
        }
        // O_h = P V
        GemmF32({.m = T, .n = s.hd, .k = T, .a = p, .lda = T, .b = v + hv.KvOff(seq, kvh), .ldb = hv.kvd,
                 .c = out + hv.QOff(seq, h), .ldc = hv.qd}, nullptr);
      }
    }
  });
}

void AttentionBackward(const AttnShape& s, const float* q, const float* k, const float* v, const float* probs,
                       const float* dout, float* dq, float* dk, float* dv, ThreadPool* pool) {
  const HeadViews hv(s);
  const int64_t T = s.T;
  Rows(pool, s.seqs * s.n_kv, 1, [&](size_t b, size_t e) {
    thread_local std::vector<float> ds;  // [T][T], grows once per thread
    if (ds.size() < static_cast<size_t>(T * T)) ds.resize(static_cast<size_t>(T * T));
    for (size_t task = b; task < e; ++task) {
      const int64_t seq = static_cast<int64_t>(task) / s.n_kv, kvh = static_cast<int64_t>(task) % s.n_kv;
      float* dk_h = dk + hv.KvOff(seq, kvh);
      float* dv_h = dv + hv.KvOff(seq, kvh);
      for (int64_t g = 0; g < hv.group; ++g) {
        const int64_t h = kvh * hv.group + g;
        const float* p = probs + hv.POff(seq, h);
        const float* do_h = dout + hv.QOff(seq, h);
        // dV += P^T dO_h
        GemmF32({.m = T, .n = s.hd, .k = T, .a = p, .lda = T, .a_trans = true, .b = do_h, .ldb = hv.qd, .c = dv_h,
                 .ldc = hv.kvd, .accumulate = g > 0}, nullptr);
        // dP = dO_h V^T
        GemmF32({.m = T, .n = T, .k = s.hd, .a = do_h, .lda = hv.qd, .b = v + hv.KvOff(seq, kvh), .ldb = hv.kvd,
                 .b_trans = true, .c = ds.data(), .ldc = T}, nullptr);
        // dS = scale * P (dP - sum_j P dP)
        for (int64_t i = 0; i < T; ++i) {
          const float* pr = p + i * T;
          float* dr = ds.data() + i * T;
          float dot = 0.0f;
          for (int64_t j = 0; j <= i; ++j) dot += pr[j] * dr[j];
          for (int64_t j = 0; j <= i; ++j) dr[j] = s.scale * pr[j] * (dr[j] - dot);
          for (int64_t j = i + 1; j < T; ++j) dr[j] = 0.0f;
        }
        // dQ_h = dS K;  dK += dS^T Q_h
        GemmF32({.m = T, .n = s.hd, .k = T, .a = ds.data(), .lda = T, .b = k + hv.KvOff(seq, kvh), .ldb = hv.kvd,
                 .c = dq + hv.QOff(seq, h), .ldc = hv.qd}, nullptr);
        GemmF32({.m = T, .n = s.hd, .k = T, .a = ds.data(), .lda = T, .a_trans = true, .b = q + hv.QOff(seq, h),
                 .ldb = hv.qd, .c = dk_h, .ldc = hv.kvd, .accumulate = g > 0}, nullptr);
      }
    }
  });
}

// ---- SwiGLU

void SwiGluForward(const float* g, const float* u, int64_t n, float* h, ThreadPool* pool) {
  const SwiGluFn swiglu = ActiveDotKernels().swiglu;  // the engine's (bit-equal to softmax::Silu * u)
  Rows(pool, n, 16384, [&](size_t b, size_t e) { swiglu(g + b, u + b, h + b, static_cast<int64_t>(e - b)); });
}

void SwiGluBackward(const float* g, const float* u, const float* dh, int64_t n, float* dg, float* du, ThreadPool* pool) {
  const SwiGluFn swiglu = ActiveDotKernels().swiglu;
  Rows(pool, n, 16384, [&](size_t b, size_t e) {
    constexpr size_t kChunk = 1024;
    float ones[kChunk], s[kChunk];
    std::fill(ones, ones + kChunk, 1.0f);
    for (size_t c0 = b; c0 < e; c0 += kChunk) {
      const size_t m = std::min(kChunk, e - c0);
      swiglu(g + c0, ones, s, static_cast<int64_t>(m));  // SiLU(g) on the kernel's vectors
      for (size_t i = 0; i < m; ++i) {
        // sigmoid(g) = SiLU(g) / g (SiLU is g / (1 + e) or g e / (1 + e): the division is exact to
        // a few ulps); 1/2 at g = 0.
        const float x = g[c0 + i], silu = s[i];
        const float sig = x != 0.0f ? silu / x : 0.5f;
        const float d = dh[c0 + i];
        dg[c0 + i] = d * u[c0 + i] * (sig * (1.0f + x * (1.0f - sig)));
        du[c0 + i] = d * silu;
      }
    }
  });
}

// ---- Embedding and bias

void EmbeddingForward(const float* table, const int32_t* tokens, int64_t rows, int64_t n, float* x) {
  for (int64_t r = 0; r < rows; ++r) std::memcpy(x + r * n, table + static_cast<int64_t>(tokens[r]) * n, static_cast<size_t>(n) * 4);
}

void EmbeddingBackward(const float* dx, const int32_t* tokens, int64_t rows, int64_t n, float* dtable) {
  for (int64_t r = 0; r < rows; ++r) {
    float* d = dtable + static_cast<int64_t>(tokens[r]) * n;
    for (int64_t i = 0; i < n; ++i) d[i] += dx[r * n + i];
  }
}

void AddBias(const float* b, int64_t rows, int64_t n, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < n; ++i) y[r * n + i] += b[i];
  }
}

void BiasBackward(const float* dy, int64_t rows, int64_t n, float* db) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < n; ++i) db[i] += dy[r * n + i];
  }
}

// ---- Losses

namespace {
// log-sum-exp of a row, in double.
double LogSumExp(const float* z, int64_t V, float* mx_out) {
  const float mx = *std::max_element(z, z + V);
  double sum = 0;
  for (int64_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(z[v]) - mx);
  *mx_out = mx;
  return std::log(sum) + mx;
}

template <typename RowFn>
double SumRows(ThreadPool* pool, int64_t rows, RowFn&& fn) {
  std::vector<double> per(static_cast<size_t>(rows), 0.0);
  Rows(pool, rows, 4, [&](size_t b, size_t e) {
    for (size_t r = b; r < e; ++r) per[r] = fn(static_cast<int64_t>(r));
  });
  double total = 0;
  for (double v : per) total += v;
  return total;
}
}  // namespace

double CrossEntropy(const float* logits, const int32_t* targets, int64_t rows, int64_t V, float grad_scale,
                    float* dlogits, ThreadPool* pool) {
  return SumRows(pool, rows, [&](int64_t r) -> double {
    const float* z = logits + r * V;
    float* dz = dlogits + r * V;
    if (targets[r] < 0) {
      std::fill(dz, dz + V, 0.0f);
      return 0.0;
    }
    float mx;
    const double lse = LogSumExp(z, V, &mx);
    for (int64_t v = 0; v < V; ++v) dz[v] = grad_scale * static_cast<float>(std::exp(static_cast<double>(z[v]) - lse));
    dz[targets[r]] -= grad_scale;
    return lse - static_cast<double>(z[targets[r]]);
  });
}

double KlDistill(const float* logits, const float* teacher_logp, const uint8_t* mask, int64_t rows, int64_t V,
                 float grad_scale, float* dlogits, ThreadPool* pool) {
  return SumRows(pool, rows, [&](int64_t r) -> double {
    const float* z = logits + r * V;
    const float* t = teacher_logp + r * V;
    float* dz = dlogits + r * V;
    if (mask != nullptr && mask[r] == 0) {
      std::fill(dz, dz + V, 0.0f);
      return 0.0;
    }
    float mx;
    const double lse = LogSumExp(z, V, &mx);
    double kl = 0;
    for (int64_t v = 0; v < V; ++v) {
      const double ls = static_cast<double>(z[v]) - lse;
      const double pt = std::exp(static_cast<double>(t[v]));
      kl += pt * (static_cast<double>(t[v]) - ls);
      dz[v] = grad_scale * static_cast<float>(std::exp(ls) - pt);
    }
    return kl;
  });
}

void LogSoftmaxRows(const float* logits, int64_t rows, int64_t V, float* out, ThreadPool* pool) {
  Rows(pool, rows, 4, [&](size_t b, size_t e) {
    for (size_t r = b; r < e; ++r) {
      float mx;
      const double lse = LogSumExp(logits + r * V, V, &mx);
      for (int64_t v = 0; v < V; ++v) out[r * V + v] = static_cast<float>(static_cast<double>(logits[r * V + v]) - lse);
    }
  });
}

}  // namespace lowbit::train

#include "lowbit/quant/search.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "lowbit/numeric/half.h"
#include "lowbit/quant/rtn.h"

namespace lowbit::search {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int kMaxLen = 256;
// Search effort, tuned on the golden sources and stories5M (docs/QUALITY.md has the sweep): more
// buys < 0.3% RMSE for 2-3x the time.
constexpr int kExact = 3;     // integer (scale, min) pairs per sub-block evaluated exactly, best by surrogate
constexpr int kAffKeep = 2;   // super-scale candidates refined by exact descent
constexpr int kAffScan = 50;  // surrogate scan steps per super-scale (40% range)

inline float RoundFp16(float v) { return Fp16ToFp32(Fp32ToFp16(v)); }

// The best few (value, super-scale pair) seen by a surrogate scan, best first, without duplicates.
struct TopCandidates {
  static constexpr int kMax = 3;
  int keep;
  float d[kMax] = {0, 0, 0}, m[kMax] = {0, 0, 0};
  double v[kMax] = {kInf, kInf, kInf};

  void Offer(float dd, float mm, double value) {
    for (int slot = 0; slot < keep; ++slot) {
      if (d[slot] == dd && m[slot] == mm) return;
      if (value < v[slot]) {
        for (int k = keep - 1; k > slot; --k) {
          v[k] = v[k - 1];
          d[k] = d[k - 1];
          m[k] = m[k - 1];
        }
        v[slot] = value;
        d[slot] = dd;
        m[slot] = mm;
        return;
      }
    }
  }
};

// ---- sub-block fits (continuous scales) ----------------------------------------------------

// Best scale for x ~= c * level[idx] over one sub-block, separately for c > 0 and c < 0 (with an
// asymmetric level set the two orientations differ, and which one fits under a shared super-scale
// is only known later). Candidates map the largest |x| near each end of the level range, each
// followed by a least-squares refit. `err` gets each orientation's squared error.
struct SymFit {
  float c[2] = {0, 0};        // [0]: best c > 0, [1]: best c < 0 (0 when none)
  double err[2] = {kInf, kInf};
  double curv[2] = {0, 0};    // sum w q^2 for the codes at c
};

SymFit FitSymmetricSub(const Levels& lv, const float* x, const float* w, int n) {
  SymFit f;
  float amax = 0, mx = 0;
  double sxx = 0;
  for (int i = 0; i < n; ++i) {
    sxx += static_cast<double>(w[i]) * x[i] * x[i];
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      mx = x[i];
    }
  }
  if (amax == 0) return f;
  const float ends[2] = {lv.Min(), lv.Max()};
  const float span = std::max(std::fabs(lv.Min()), std::fabs(lv.Max()));
  for (float end : ends) {
    // From 40% past the end (the largest |x| clipped, right when it matters little) to 25% short.
    for (int k = -8; k <= 5; ++k) {
      const float r = end - (end < 0 ? -1.0f : 1.0f) * span * 0.05f * static_cast<float>(k);
      if (r == 0) continue;
      float c = mx / r;
      for (int iter = 0; iter < 2; ++iter) {
        const float inv = 1.0f / c;
        double sxq = 0, sqq = 0;
        for (int i = 0; i < n; ++i) {
          const float q = lv.Value(lv.Nearest(x[i] * inv));
          sxq += static_cast<double>(w[i]) * x[i] * q;
          sqq += static_cast<double>(w[i]) * q * q;
        }
        if (sqq <= 0) break;
        const float refit = static_cast<float>(sxq / sqq);
        if (refit == 0) break;
        const double err = sxx - sxq * sxq / sqq;
        const int o = refit > 0 ? 0 : 1;
        if (err < f.err[o]) {
          f.err[o] = err;
          f.c[o] = refit;
          f.curv[o] = sqq;
        }
        c = refit;
      }
    }
  }
  return f;
}

float BestScale(const SymFit& f) { return f.err[0] <= f.err[1] ? f.c[0] : f.c[1]; }

// Best (a, m) for x ~= a * L + m, L in [0, nmax], a >= 0, m <= 0, over one sub-block.
void FitAffineSub(const float* x, const float* w, int n, int nmax, float* a_out, float* m_out) {
  float xmin = 0, xmax = -std::numeric_limits<float>::max();
  for (int i = 0; i < n; ++i) {
    xmin = std::min(xmin, x[i]);
    xmax = std::max(xmax, x[i]);
  }
  if (xmax <= xmin) {
    *a_out = 0;
    *m_out = xmin;
    return;
  }
  double best_err = kInf;
  float best_a = (xmax - xmin) / nmax, best_m = xmin;
  for (int k = -6; k <= 6; ++k) {
    float iscale = (static_cast<float>(nmax) + 0.167f * static_cast<float>(k)) / (xmax - xmin);
    float shift = xmin;
    for (int iter = 0; iter < 2; ++iter) {
      double sw = 0, sl = 0, sl2 = 0, sx = 0, sxl = 0, sx2 = 0;
      for (int i = 0; i < n; ++i) {
        const int l = std::clamp(NearestInt(iscale * (x[i] - shift)), 0, nmax);
        const double wi = w[i];
        sw += wi;
        sl += wi * l;
        sl2 += wi * l * l;
        sx += wi * x[i];
        sxl += wi * x[i] * l;
        sx2 += wi * x[i] * x[i];
      }
      const double det = sw * sl2 - sl * sl;
      double a, m;
      if (det > 0) {
        a = (sw * sxl - sx * sl) / det;
        m = (sl2 * sx - sl * sxl) / det;
      } else {
        a = 0;
        m = sw > 0 ? sx / sw : 0;
      }
      if (m > 0) {  // offsets are stored as -dmin*lm <= 0
        m = 0;
        a = sl2 > 0 ? sxl / sl2 : 0;
      }
      if (a < 0) a = 0;
      const double err = sx2 - 2 * a * sxl - 2 * m * sx + a * a * sl2 + 2 * a * m * sl + m * m * sw;
      if (err < best_err) {
        best_err = err;
        best_a = static_cast<float>(a);
        best_m = static_cast<float>(m);
      }
      if (a <= 0) break;
      iscale = static_cast<float>(1.0 / a);
      shift = static_cast<float>(m);
    }
  }
  *a_out = best_a;
  *m_out = best_m;
}

// ---- second level: integer sub-block scales under an fp16 super-block scale ----------------

// Codes and error of one sub-block for a fixed (stored) scale.
double SymmetricSubError(const Levels& lv, const float* x, const float* w, int n, float scale, uint8_t* idx) {
  double err = 0;
  if (scale == 0) {
    const int zero = lv.Nearest(0.0f);
    for (int i = 0; i < n; ++i) {
      idx[i] = static_cast<uint8_t>(zero);
      const double e = x[i] - scale * lv.Value(zero);
      err += w[i] * e * e;
    }
    return err;
  }
  const float inv = 1.0f / scale;
  for (int i = 0; i < n; ++i) {
    const int k = lv.Nearest(x[i] * inv);
    idx[i] = static_cast<uint8_t>(k);
    const double e = x[i] - scale * lv.Value(k);
    err += w[i] * e * e;
  }
  return err;
}

double AffineSubError(const float* x, const float* w, int n, int nmax, float scale, float mn, uint8_t* L) {
  double err = 0;
  const float inv = scale > 0 ? 1.0f / scale : 0.0f;
  for (int i = 0; i < n; ++i) {
    const int l = scale > 0 ? std::clamp(NearestInt((x[i] + mn) * inv), 0, nmax) : 0;
    L[i] = static_cast<uint8_t>(l);
    const double e = x[i] - (scale * static_cast<float>(l) - mn);
    err += w[i] * e * e;
  }
  return err;
}

}  // namespace

int Levels::Nearest(float v) const {
  if (!book) return std::clamp(NearestInt(std::clamp(v, -1e6f, 1e6f)) - qmin, 0, n - 1);
  if (v <= book[0]) return 0;
  if (v >= book[n - 1]) return n - 1;
  int lo = 0, hi = n - 1;  // book[lo] < v < book[hi]
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (book[mid] <= v) lo = mid;
    else hi = mid;
  }
  return v - book[lo] < book[hi] - v ? lo : hi;
}

double QuantizeSymmetric(const SymmetricSpec& sp, const float* x, const float* w, float* d_out, int* s,
                         uint8_t* idx) {
  const int N = sp.nsub * sp.len;
  // Stage 1: the ideal (continuous) scale c of each sub-block, and the curvature Q = sum w q^2 of
  // its error around c (error(v) ~= E* + Q (v - c)^2 while the codes stay put).
  SymFit fit[32];
  float cmax = 0, camax = 0;
  for (int j = 0; j < sp.nsub; ++j) {
    fit[j] = FitSymmetricSub(sp.levels, x + j * sp.len, w + j * sp.len, sp.len);
    const float c = BestScale(fit[j]);
    if (std::fabs(c) > camax) {
      camax = std::fabs(c);
      cmax = c;
    }
  }
  if (camax == 0) {
    *d_out = 0;
    for (int j = 0; j < sp.nsub; ++j) s[j] = 0;
    return SymmetricSubError(sp.levels, x, w, N, 0.0f, idx);
  }
  // Stage 2a: rank candidate super-scales d (largest |c| landing anywhere from the end of the
  // integer range down to 60% of it, either sign) by the quadratic surrogate.
  auto surrogate = [&](float d16) {
    double total = 0;
    for (int j = 0; j < sp.nsub; ++j) {
      double best = kInf;
      for (int o = 0; o < 2; ++o) {
        if (fit[j].err[o] == kInf) continue;
        const float u = fit[j].c[o] / d16;
        for (float r : {std::floor(u), std::ceil(u)}) {
          const float sj = std::clamp(r, static_cast<float>(sp.smin), static_cast<float>(sp.smax));
          const double dv = static_cast<double>(d16) * sj - fit[j].c[o];
          best = std::min(best, fit[j].err[o] + fit[j].curv[o] * dv * dv);
        }
      }
      total += best == kInf ? 0 : best;
    }
    return total;
  };
  TopCandidates top{kAffKeep};
  for (int end : {sp.smin, sp.smax}) {
    const float t_end = static_cast<float>(end) + (end < 0 ? -0.5f : 0.5f);
    for (int k = 0; k <= kAffScan; ++k) {
      const float t = t_end * (1.0f - 0.4f / kAffScan * static_cast<float>(k));
      const float d16 = RoundFp16(cmax / t);
      if (d16 == 0 || !std::isfinite(d16)) continue;
      top.Offer(d16, 0.0f, surrogate(d16));
    }
  }
  // Stage 2b: exact evaluation from the best candidates, refined by coordinate descent (integer
  // scales +-1 per sub-block, then a least-squares refit of d).
  uint8_t trial[kMaxLen];
  double best_total = kInf;
  for (int cand = 0; cand < top.keep; ++cand) {
    if (top.v[cand] == kInf) continue;
    float d = top.d[cand];
    int cur_s[32];
    uint8_t cur_idx[kMaxLen];
    double prev = kInf;
    for (int iter = 0; iter < 4; ++iter) {
      const float d16 = RoundFp16(d);
      if (d16 == 0 || !std::isfinite(d16)) break;
      double total = 0;
      for (int j = 0; j < sp.nsub; ++j) {
        const float* xj = x + j * sp.len;
        const float* wj = w + j * sp.len;
        // Integer scales around both orientations' ideal, ranked by the surrogate; the best
        // kExact are evaluated exactly.
        struct Cand { double v; int sj; } cands[6];
        int nc = 0;
        for (int o = 0; o < 2; ++o) {
          const bool none = fit[j].err[0] == kInf && fit[j].err[1] == kInf;
          if (fit[j].err[o] == kInf && !(o == 0 && none)) continue;
          const int center = std::clamp(NearestInt(fit[j].c[o] / d16), sp.smin, sp.smax);
          for (int sj = std::max(sp.smin, center - 1); sj <= std::min(sp.smax, center + 1); ++sj) {
            bool seen = false;
            for (int k = 0; k < nc; ++k) seen |= cands[k].sj == sj;
            if (seen) continue;
            double v = none ? 0 : kInf;
            for (int oo = 0; oo < 2 && !none; ++oo) {
              if (fit[j].err[oo] == kInf) continue;
              const double dv = static_cast<double>(d16) * sj - fit[j].c[oo];
              v = std::min(v, fit[j].err[oo] + fit[j].curv[oo] * dv * dv);
            }
            cands[nc++] = {v, sj};
          }
        }
        const int n_exact = std::min(nc, kExact);
        std::partial_sort(cands, cands + n_exact, cands + nc, [](const Cand& c1, const Cand& c2) { return c1.v < c2.v; });
        double best = kInf;
        for (int k = 0; k < n_exact; ++k) {
          const double e = SymmetricSubError(sp.levels, xj, wj, sp.len, d16 * static_cast<float>(cands[k].sj), trial);
          if (e < best) {
            best = e;
            cur_s[j] = cands[k].sj;
            std::memcpy(cur_idx + j * sp.len, trial, sp.len);
          }
        }
        total += best;
      }
      if (total < best_total) {
        best_total = total;
        *d_out = d16;
        std::memcpy(s, cur_s, sizeof(int) * sp.nsub);
        std::memcpy(idx, cur_idx, N);
      }
      if (total >= prev) break;
      prev = total;
      double sxq = 0, sqq = 0;
      for (int i = 0; i < N; ++i) {
        const double q = static_cast<double>(cur_s[i / sp.len]) * sp.levels.Value(cur_idx[i]);
        sxq += w[i] * x[i] * q;
        sqq += w[i] * q * q;
      }
      if (sqq <= 0) break;
      d = static_cast<float>(sxq / sqq);
    }
  }
  if (best_total == kInf) {
    *d_out = 0;
    for (int j = 0; j < sp.nsub; ++j) s[j] = 0;
    return SymmetricSubError(sp.levels, x, w, N, 0.0f, idx);
  }
  return best_total;
}

double QuantizeAffine(const AffineSpec& sp, const float* x, const float* w, float* d_out, float* dmin_out,
                      int* ls, int* lm, uint8_t* L) {
  const int N = sp.nsub * sp.len;
  // Stage 1: the ideal (a, m) of each sub-block and the moments of its codes, so that the error
  // for a nearby stored (A, M) is E* + Sll dA^2 + 2 Sl dA dM + Sw dM^2.
  struct Sub {
    float a, b;  // x ~= a*L - b
    double e, sw, sl, sll;
  } sub[32];
  float amax = 0, bmax = 0;
  uint8_t tmp[kMaxLen];
  for (int j = 0; j < sp.nsub; ++j) {
    const float* xj = x + j * sp.len;
    const float* wj = w + j * sp.len;
    float m;
    FitAffineSub(xj, wj, sp.len, sp.nmax, &sub[j].a, &m);
    sub[j].b = -m;
    sub[j].e = AffineSubError(xj, wj, sp.len, sp.nmax, sub[j].a, sub[j].b, tmp);
    sub[j].sw = sub[j].sl = sub[j].sll = 0;
    for (int i = 0; i < sp.len; ++i) {
      sub[j].sw += wj[i];
      sub[j].sl += static_cast<double>(wj[i]) * tmp[i];
      sub[j].sll += static_cast<double>(wj[i]) * tmp[i] * tmp[i];
    }
    amax = std::max(amax, sub[j].a);
    bmax = std::max(bmax, sub[j].b);
  }
  const float lmax = static_cast<float>(sp.lmax);
  auto surrogate = [&](float d16, float dmin16) {
    double total = 0;
    for (int j = 0; j < sp.nsub; ++j) {
      const Sub& u = sub[j];
      const float us = d16 > 0 ? u.a / d16 : 0, um = dmin16 > 0 ? u.b / dmin16 : 0;
      double best = kInf;
      for (float rs : {std::floor(us), std::ceil(us)}) {
        const double dA = static_cast<double>(d16) * std::clamp(rs, 0.0f, lmax) - u.a;
        for (float rm : {std::floor(um), std::ceil(um)}) {
          const double dM = u.b - static_cast<double>(dmin16) * std::clamp(rm, 0.0f, lmax);
          best = std::min(best, u.sll * dA * dA + 2 * u.sl * dA * dM + u.sw * dM * dM);
        }
      }
      total += u.e + best;
    }
    return total;
  };
  // Stage 2a: coordinate scans over the two super-scales on the surrogate, keeping the best few.
  TopCandidates top{kAffKeep};
  float cur_d = RoundFp16(amax / lmax), cur_m = RoundFp16(bmax / lmax);
  top.Offer(cur_d, cur_m, surrogate(cur_d, cur_m));
  for (int pass = 0; pass < 3; ++pass) {
    const bool scan_d = pass != 1;
    const float largest = scan_d ? amax : bmax;
    if (largest <= 0) continue;
    double best_v = kInf;
    float best_val = scan_d ? cur_d : cur_m;
    for (int k = 0; k <= kAffScan; ++k) {
      const float val = RoundFp16(largest / ((lmax + 0.5f) * (1.0f - 0.4f / kAffScan * static_cast<float>(k))));
      const double v = scan_d ? surrogate(val, cur_m) : surrogate(cur_d, val);
      if (scan_d) top.Offer(val, cur_m, v);
      else top.Offer(cur_d, val, v);
      if (v < best_v) {
        best_v = v;
        best_val = val;
      }
    }
    (scan_d ? cur_d : cur_m) = best_val;
  }
  // Stage 2b: exact evaluation from the best candidates, refined by coordinate descent.
  double best_total = kInf;
  uint8_t trial[kMaxLen];
  int cur_ls[32], cur_lm[32];
  uint8_t cur_L[kMaxLen];
  for (int cand = 0; cand < top.keep; ++cand) {
    if (top.v[cand] == kInf) continue;
    float d = top.d[cand], dmin = top.m[cand];
    double prev = kInf;
    for (int iter = 0; iter < 4; ++iter) {
      const float d16 = RoundFp16(d), dmin16 = RoundFp16(dmin);
      if (!std::isfinite(d16) || !std::isfinite(dmin16)) break;
      double total = 0;
      for (int j = 0; j < sp.nsub; ++j) {
        const float* xj = x + j * sp.len;
        const float* wj = w + j * sp.len;
        // Rank the integer (scale, min) pairs around the ideal by the surrogate; evaluate the best
        // kExact exactly.
        const Sub& u = sub[j];
        const int cs = d16 > 0 ? std::clamp(NearestInt(u.a / d16), 0, sp.lmax) : 0;
        const int cm = dmin16 > 0 ? std::clamp(NearestInt(u.b / dmin16), 0, sp.lmax) : 0;
        struct Pair { double v; int si, mi; } pairs[9];
        int np = 0;
        for (int si = std::max(0, cs - 1); si <= std::min(sp.lmax, cs + 1); ++si) {
          for (int mi = std::max(0, cm - 1); mi <= std::min(sp.lmax, cm + 1); ++mi) {
            const double dA = static_cast<double>(d16) * si - u.a, dM = u.b - static_cast<double>(dmin16) * mi;
            pairs[np++] = {u.sll * dA * dA + 2 * u.sl * dA * dM + u.sw * dM * dM, si, mi};
          }
        }
        const int n_exact = std::min(np, kExact);
        std::partial_sort(pairs, pairs + n_exact, pairs + np, [](const Pair& p1, const Pair& p2) { return p1.v < p2.v; });
        double best = kInf;
        for (int k = 0; k < n_exact; ++k) {
          const double e = AffineSubError(xj, wj, sp.len, sp.nmax, d16 * static_cast<float>(pairs[k].si),
                                          dmin16 * static_cast<float>(pairs[k].mi), trial);
          if (e < best) {
            best = e;
            cur_ls[j] = pairs[k].si;
            cur_lm[j] = pairs[k].mi;
            std::memcpy(cur_L + j * sp.len, trial, sp.len);
          }
        }
        total += best;
      }
      if (total < best_total) {
        best_total = total;
        *d_out = d16;
        *dmin_out = dmin16;
        std::memcpy(ls, cur_ls, sizeof(int) * sp.nsub);
        std::memcpy(lm, cur_lm, sizeof(int) * sp.nsub);
        std::memcpy(L, cur_L, N);
      }
      if (total >= prev) break;
      prev = total;
      // Least squares for (d, dmin) with x ~= d * (ls*L) - dmin * lm.
      double s11 = 0, s12 = 0, s22 = 0, r1 = 0, r2 = 0;
      for (int i = 0; i < N; ++i) {
        const int j = i / sp.len;
        const double p = static_cast<double>(cur_ls[j]) * cur_L[i];
        const double q = -static_cast<double>(cur_lm[j]);
        s11 += w[i] * p * p;
        s12 += w[i] * p * q;
        s22 += w[i] * q * q;
        r1 += w[i] * p * x[i];
        r2 += w[i] * q * x[i];
      }
      const double det = s11 * s22 - s12 * s12;
      if (det > 0) {
        d = static_cast<float>((r1 * s22 - r2 * s12) / det);
        dmin = static_cast<float>((s11 * r2 - s12 * r1) / det);
      } else if (s11 > 0) {
        d = static_cast<float>(r1 / s11);
      } else {
        break;
      }
      if (d < 0 || dmin < 0) break;
    }
  }
  if (best_total == kInf) {  // degenerate (all zero or non-finite scales): store zeros
    *d_out = 0;
    *dmin_out = 0;
    for (int j = 0; j < sp.nsub; ++j) ls[j] = lm[j] = 0;
    std::memset(L, 0, N);
    best_total = 0;
    for (int i = 0; i < N; ++i) best_total += w[i] * x[i] * x[i];
  }
  return best_total;
}

double QuantizeScaled(const Levels& lv, const float* x, const float* w, int n, float* d_out, uint8_t* idx) {
  const float c = BestScale(FitSymmetricSub(lv, x, w, n));
  double best = kInf;
  uint8_t trial[kMaxLen];
  // The stored scale is fp16: try the rounding of the fit and its fp16 neighbours.
  const uint16_t h = Fp32ToFp16(c);
  for (int delta = -2; delta <= 2; ++delta) {
    const auto hh = static_cast<uint16_t>(h + delta);
    const float d = Fp16ToFp32(hh);
    if (!std::isfinite(d) || (delta != 0 && ((hh ^ h) & 0x8000))) continue;
    const double e = SymmetricSubError(lv, x, w, n, d, trial);
    if (e < best) {
      best = e;
      *d_out = d;
      std::memcpy(idx, trial, n);
    }
  }
  return best;
}

double QuantizeTernary(const float* x, const float* w, int n, float* d_out, int8_t* t) {
  // For a given d the best t is sign(x) where |x| > d/2; the optimal support is a top-k set by |x|
  // and the best d for it is the weighted mean of |x| there: scan k over the sorted order.
  int order[kMaxLen];
  std::iota(order, order + n, 0);
  std::sort(order, order + n, [&](int a, int b) { return std::fabs(x[a]) > std::fabs(x[b]); });
  double swx = 0, sw = 0, best_gain = 0;
  float best_d = 0;
  for (int k = 0; k < n; ++k) {
    const int i = order[k];
    swx += w[i] * std::fabs(x[i]);
    sw += w[i];
    if (sw > 0 && swx * swx / sw > best_gain) {
      best_gain = swx * swx / sw;
      best_d = static_cast<float>(swx / sw);
    }
  }
  const float d = RoundFp16(best_d);
  double err = 0;
  for (int i = 0; i < n; ++i) {
    t[i] = d > 0 && std::fabs(x[i]) > 0.5f * d ? (x[i] > 0 ? 1 : -1) : 0;
    const double e = x[i] - d * t[i];
    err += w[i] * e * e;
  }
  *d_out = d;
  return err;
}

}  // namespace lowbit::search

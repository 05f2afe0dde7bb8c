// Dispatch for the vector searches (search_impl.inc, built as search_ref.cc and search_avx2.cc) and
// the scalar exact ternary fit.
#include "lowbit/quant/search.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "lowbit/numeric/half.h"

namespace lowbit::search {

namespace ref {
const SearchTable& Table();
}
namespace avx2 {
const SearchTable& Table();
}

const SearchTable& SearchTableFor(Isa isa) { return isa >= Isa::kAvx2 ? avx2::Table() : ref::Table(); }

namespace {
const SearchTable& Active() {
  static const SearchTable& table = SearchTableFor(ActiveIsa());
  return table;
}
}  // namespace

double QuantizeSymmetric(const SymmetricSpec& spec, const float* x, const float* w, float* d, int* s, uint8_t* idx) {
  return Active().symmetric(spec, x, w, d, s, idx);
}

double QuantizeAffine(const AffineSpec& spec, const float* x, const float* w, float* d, float* dmin, int* ls, int* lm,
                      uint8_t* L) {
  return Active().affine(spec, x, w, d, dmin, ls, lm, L);
}

double QuantizeScaled(const Levels& levels, const float* x, const float* w, int n, const Effort& effort, float* d,
                      uint8_t* idx) {
  return Active().scaled(levels, x, w, n, effort, d, idx);
}

namespace {
constexpr int kMaxLen = 256;
inline float RoundFp16(float v) { return Fp16ToFp32(Fp32ToFp16(v)); }
}  // namespace

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

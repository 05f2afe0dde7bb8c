#include "lowbit/kernels/dot.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#include "lowbit/kernels/act_quant.h"
#include "lowbit/kernels/dot_bnb.h"
#include "lowbit/kernels/dot_int8.h"
#include "lowbit/kernels/matvec.h"
#include "lowbit/kernels/softmax.h"
#include "lowbit/numeric/blocks.h"
#include "lowbit/numeric/convert.h"
#include "lowbit/numeric/dequant.h"
#include "lowbit/numeric/half.h"
#include "lowbit/numeric/iq_tables.h"
#include "lowbit/numeric/interleave.h"

namespace lowbit {
namespace {

inline float H(uint16_t h) { return Fp16ToFp32(h); }

// F32 activations: the row dequantized, then an F32 dot.
template <GgmlType T>
float FloatRow(const uint8_t* row, const uint8_t* act, int64_t n) {
  const auto* x = reinterpret_cast<const float*>(act);
  if constexpr (T == GgmlType::kF32) {
    return Dot(reinterpret_cast<const float*>(row), x, n);
  } else {
    thread_local std::vector<float> tmp;  // grows once per thread
    if (tmp.size() < static_cast<size_t>(n)) tmp.resize(static_cast<size_t>(n));
    ToFloatFor(T)(row, tmp.data(), n);
    return Dot(tmp.data(), x, n);
  }
}

// ---- 32-element blocks against Q8_0 / Q8_1: value = d * q + m with integer codes q.

struct Codes32 {
  int8_t q[32];
  float d, m = 0.0f;
};

template <GgmlType T>
void Decode32(const typename BlockOf<T>::type& b, Codes32* c) {
  c->d = H(b.d);
  if constexpr (T == GgmlType::kQ8_0) {
    std::memcpy(c->q, b.qs, 32);
  } else if constexpr (T == GgmlType::kIQ4_NL) {
    for (int j = 0; j < 16; ++j) {
      c->q[j] = iq::kvalues_iq4nl[b.qs[j] & 0xF];
      c->q[j + 16] = iq::kvalues_iq4nl[b.qs[j] >> 4];
    }
  } else {
    uint32_t qh = 0;
    constexpr bool kFive = T == GgmlType::kQ5_0 || T == GgmlType::kQ5_1;
    constexpr bool kAffine = T == GgmlType::kQ4_1 || T == GgmlType::kQ5_1;
    if constexpr (kFive) std::memcpy(&qh, b.qh, 4);
    if constexpr (kAffine) c->m = H(b.m);
    const int bias = kAffine ? 0 : (kFive ? 16 : 8);
    for (int j = 0; j < 16; ++j) {
      c->q[j] = static_cast<int8_t>(((b.qs[j] & 0xF) | (((qh >> j) & 1) << 4)) - bias);
      c->q[j + 16] = static_cast<int8_t>(((b.qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - bias);
    }
  }
}

template <GgmlType T, GgmlType A>
float Dot32(const uint8_t* row, const uint8_t* act, int64_t n) {
  const auto* w = reinterpret_cast<const typename BlockOf<T>::type*>(row);
  const auto* y = reinterpret_cast<const typename BlockOf<A>::type*>(act);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQK; ++i) {
    Codes32 c;
    Decode32<T>(w[i], &c);
    int s = 0;
    for (int j = 0; j < 32; ++j) s += c.q[j] * y[i].qs[j];
    if constexpr (A == GgmlType::kQ8_1) {
      sum += (c.d * H(y[i].d)) * static_cast<float>(s) + c.m * H(y[i].s);
    } else {
      sum += static_cast<float>(s) * (c.d * H(y[i].d));
    }
  }
  return sum;
}

// ---- 256-element super-blocks against Q8_K: value = d * sc[g] * q - dmin * mn[g] per group g of
// 16 elements (sub-blocks of 32 repeat their scale over two groups).

struct CodesK {
  int8_t q[256];
  int sc[16], mn[16] = {};
  float d, dmin = 0.0f;
};

template <GgmlType T>
void DecodeK(const typename BlockOf<T>::type& b, CodesK* c) {
  int8_t* o = c->q;
  if constexpr (T == GgmlType::kQ2_K) {
    c->d = H(b.d);
    c->dmin = H(b.dmin);
    for (int g = 0; g < 16; ++g) c->sc[g] = b.scales[g] & 0xF, c->mn[g] = b.scales[g] >> 4;
    for (int half = 0; half < 2; ++half) {
      for (int j = 0; j < 4; ++j) {
        for (int l = 0; l < 32; ++l) o[128 * half + 32 * j + l] = static_cast<int8_t>((b.qs[32 * half + l] >> (2 * j)) & 3);
      }
    }
  } else if constexpr (T == GgmlType::kQ3_K) {
    c->d = H(b.d);
    int8_t s[16];
    Q3KScales(b.scales, s);
    for (int g = 0; g < 16; ++g) c->sc[g] = s[g] - 32;
    int m = 1;
    for (int half = 0; half < 2; ++half) {
      for (int j = 0; j < 4; ++j, m <<= 1) {
        for (int l = 0; l < 32; ++l) {
          o[128 * half + 32 * j + l] =
              static_cast<int8_t>(((b.qs[32 * half + l] >> (2 * j)) & 3) - ((b.hmask[l] & m) ? 0 : 4));
        }
      }
    }
  } else if constexpr (T == GgmlType::kQ4_K || T == GgmlType::kQ5_K) {
    c->d = H(b.d);
    c->dmin = H(b.dmin);
    for (int j = 0; j < 8; ++j) {
      uint8_t s, m;
      ScaleMinK4(j, b.scales, &s, &m);
      c->sc[2 * j] = c->sc[2 * j + 1] = s;
      c->mn[2 * j] = c->mn[2 * j + 1] = m;
    }
    for (int ch = 0; ch < 4; ++ch) {
      for (int l = 0; l < 32; ++l) {
        int lo = b.qs[32 * ch + l] & 0xF, hi = b.qs[32 * ch + l] >> 4;
        if constexpr (T == GgmlType::kQ5_K) {
          lo += (b.qh[l] >> (2 * ch)) & 1 ? 16 : 0;
          hi += (b.qh[l] >> (2 * ch + 1)) & 1 ? 16 : 0;
        }
        o[64 * ch + l] = static_cast<int8_t>(lo);
        o[64 * ch + 32 + l] = static_cast<int8_t>(hi);
      }
    }
  } else if constexpr (T == GgmlType::kQ6_K) {
    c->d = H(b.d);
    for (int g = 0; g < 16; ++g) c->sc[g] = b.scales[g];
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = b.ql + 64 * half;
      const uint8_t* qh = b.qh + 32 * half;
      int8_t* out = o + 128 * half;
      for (int l = 0; l < 32; ++l) {
        out[l] = static_cast<int8_t>(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
        out[l + 32] = static_cast<int8_t>(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
        out[l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
        out[l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
      }
    }
  } else {
    static_assert(T == GgmlType::kIQ4_XS);
    c->d = H(b.d);
    for (int ib = 0; ib < 8; ++ib) {
      c->sc[2 * ib] = c->sc[2 * ib + 1] = IQ4XSScale(b, ib);
      for (int j = 0; j < 16; ++j) {
        o[32 * ib + j] = iq::kvalues_iq4nl[b.qs[16 * ib + j] & 0xF];
        o[32 * ib + 16 + j] = iq::kvalues_iq4nl[b.qs[16 * ib + j] >> 4];
      }
    }
  }
}

template <GgmlType T>
float DotK(const uint8_t* row, const uint8_t* act, int64_t n) {
  const auto* w = reinterpret_cast<const typename BlockOf<T>::type*>(row);
  const auto* y = reinterpret_cast<const BlockQ8_K*>(act);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    CodesK c;
    DecodeK<T>(w[i], &c);
    int isum = 0, msum = 0;
    for (int g = 0; g < 16; ++g) {
      int s = 0;
      for (int l = 0; l < 16; ++l) s += c.q[16 * g + l] * y[i].qs[16 * g + l];
      isum += c.sc[g] * s;
      msum += c.mn[g] * y[i].bsums[g];
    }
    sum += (y[i].d * c.d) * static_cast<float>(isum) - (y[i].d * c.dmin) * static_cast<float>(msum);
  }
  return sum;
}

template <bool kF16, bool kCap = false>
void AttendOne(const float* q, const uint8_t* k, const uint8_t* v, uint64_t stride, int64_t n_pos, int64_t hd, float scale,
               float* att, float* out, float cap = 0.0f) {
  thread_local std::vector<float> row;  // an F16 row converted; grows once per thread
  if (row.size() < static_cast<size_t>(hd)) row.resize(static_cast<size_t>(hd));
  auto cache_row = [&](const uint8_t* cache, int64_t t) -> const float* {
    if constexpr (!kF16) {
      return reinterpret_cast<const float*>(cache + static_cast<uint64_t>(t) * stride);
    } else {
      ConvertF16ToF32(reinterpret_cast<const uint16_t*>(cache + static_cast<uint64_t>(t) * stride), row.data(), static_cast<size_t>(hd));
      return row.data();
    }
  };
  float mx = -INFINITY;
  for (int64_t t = 0; t < n_pos; ++t) {
    att[t] = Dot(q, cache_row(k, t), hd) * scale;
    if constexpr (kCap) att[t] = cap * std::tanh(att[t] * (1.0f / cap));  // as llama.cpp: scale, tanh, scale
    mx = std::max(mx, att[t]);
  }
  // Softmax: the sum of the exponentials in 8 partial sums (t mod 8), combined as Dot does.
  float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t t = 0; t < n_pos; ++t) {
    att[t] = softmax::Exp(att[t] - mx);
    part[t % 8] += att[t];
  }
  const float inv = 1.0f / softmax::Combine8(part);
  std::fill(out, out + hd, 0.0f);
  for (int64_t t = 0; t < n_pos; ++t) {
    const float a = att[t] * inv;
    const float* vr = cache_row(v, t);
    for (int64_t i = 0; i < hd; ++i) out[i] += a * vr[i];
  }
}

template <bool kF16>
void AttendRef(const float* q, int64_t n_q, const uint8_t* k, const uint8_t* v, uint64_t stride, int64_t n_pos, int64_t hd,
               float scale, float* att, float* out) {
  for (int64_t g = 0; g < n_q; ++g) AttendOne<kF16>(q + g * hd, k, v, stride, n_pos, hd, scale, att + g * n_pos, out + g * hd);
}

template <bool kF16>
void AttendCappedRef(const float* q, int64_t n_q, const uint8_t* k, const uint8_t* v, uint64_t stride, int64_t n_pos, int64_t hd,
                     float scale, float cap, float* att, float* out) {
  for (int64_t g = 0; g < n_q; ++g) {
    AttendOne<kF16, true>(q + g * hd, k, v, stride, n_pos, hd, scale, att + g * n_pos, out + g * hd, cap);
  }
}

void SwiGluRef(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = softmax::Silu(gate[i]) * up[i];
}

void GeGluRef(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = softmax::GeluTanh(gate[i]) * up[i];
}

template <GgmlType T>
constexpr VecDotFn RefFor() {
  using enum GgmlType;
  if constexpr (T == kQ4_0 || T == kQ5_0 || T == kQ8_0 || T == kIQ4_NL) return &Dot32<T, kQ8_0>;
  else if constexpr (T == kQ4_1 || T == kQ5_1) return &Dot32<T, kQ8_1>;
  else if constexpr (T == kQ2_K || T == kQ3_K || T == kQ4_K || T == kQ5_K || T == kQ6_K || T == kIQ4_XS) return &DotK<T>;
  else return &FloatRow<T>;
}

template <uint32_t... Ids>
void FillRef(DotKernels* k, std::integer_sequence<uint32_t, Ids...>) {
  ((k->dot[Ids] = FindGgmlType(Ids) && ToFloatFor(static_cast<GgmlType>(Ids)) ? RefFor<static_cast<GgmlType>(Ids)>() : nullptr), ...);
}

}  // namespace

std::optional<GgmlType> InterleavedFor(const DotKernels& k, GgmlType t) {
  const std::optional<GgmlType> x = InterleavedOf(t);
  if (!x || k.ForRows8(*x) == nullptr) return std::nullopt;
  return x;
}

std::optional<GgmlType> InterleavedFor(const DotKernels& k, GgmlType t, int64_t rows, int64_t cols, uint64_t row_stride) {
  if (rows % kX8Rows != 0 || !InterleavesCols(t, cols) || row_stride != RowBytes(t, static_cast<uint64_t>(cols))) return std::nullopt;
  return InterleavedFor(k, t);
}

GgmlType ActTypeFor(GgmlType w) {
  using enum GgmlType;
  switch (StoredTypeOf(w)) {  // an interleaved type takes its file type's
    case kQ4_0: case kQ5_0: case kQ8_0: case kIQ4_NL: return kQ8_0;
    case kQ4_1: case kQ5_1: return kQ8_1;
    case kQ2_K: case kQ3_K: case kQ4_K: case kQ5_K: case kQ6_K: case kIQ4_XS: return kQ8_K;
    case kW4G32: case kW4G64: case kW4G128: case kW8G32: case kW8G64: case kW8G128: return kQ8_0;
    case kI8R32: case kI8R256: return kI8;
    case kNF4G64x2: case kFP4G64x2: return kI16;
    default: return kF32;
  }
}

namespace {
constexpr uint64_t RoundUp(uint64_t v, uint64_t m) { return (v + m - 1) / m * m; }
}  // namespace

uint64_t ActScalesOffset(GgmlType w, int64_t n) { return RoundUp(*RowBytes(ActTypeFor(w), static_cast<uint64_t>(n)), 16); }

uint64_t ActRowBytes(GgmlType w, int64_t n) {
  if (IsInt8RowType(w)) return Int8ActRowBytes(n);
  if (IsBnb4PairType(w)) return BnbAct16RowBytes(n);
  const GgmlType a = ActTypeFor(w);
  const uint64_t nb = static_cast<uint64_t>(n) / TypeInfo(a).block_size;
  const uint64_t scales = a == GgmlType::kQ8_0 ? 12 * nb : a == GgmlType::kQ8_1 ? 8 * nb : 0;
  return RoundUp(ActScalesOffset(w, n) + scales, 64);
}

namespace {

// The blocks of an activation row from n floats (and, for Q8_0, the integer code sums into sums[]).
void QuantizeBlocks(const DotKernels& k, GgmlType a, const float* x, uint8_t* blocks, int32_t* sums, int64_t n) {
  switch (a) {
    case GgmlType::kQ8_0: k.quant_q8_0(x, blocks, n, sums); break;
    case GgmlType::kQ8_1: k.quant_q8_1(x, blocks, n, nullptr); break;
    case GgmlType::kQ8_K: k.quant_q8_k(x, blocks, n, nullptr); break;
    default: std::memcpy(blocks, x, static_cast<size_t>(n) * sizeof(float)); break;
  }
}

// The float scales after the blocks (kernels/dot.h, ActRowBytes), from the blocks and Q8_0's sums.
void FillActScales(GgmlType w, uint8_t* out, int64_t n) {
  auto* scales = reinterpret_cast<float*>(out + ActScalesOffset(w, n));
  const int64_t nb = n / kQK;
  if (ActTypeFor(w) == GgmlType::kQ8_0) {
    const auto* sums = reinterpret_cast<const int32_t*>(scales + 2 * nb);
    const auto* b = reinterpret_cast<const BlockQ8_0*>(out);
    for (int64_t i = 0; i < nb; ++i) {
      scales[i] = H(b[i].d);
      scales[nb + i] = scales[i] * static_cast<float>(sums[i]);  // exact: 11-bit d times |sum| < 2^12
    }
  } else if (ActTypeFor(w) == GgmlType::kQ8_1) {
    const auto* b = reinterpret_cast<const BlockQ8_1*>(out);
    for (int64_t i = 0; i < nb; ++i) scales[i] = H(b[i].d), scales[nb + i] = H(b[i].s);
  }
}

// Where a Q8_0 activation row keeps its integer code sums; nullptr for the other activation types.
int32_t* Q8_0Sums(GgmlType w, uint8_t* out, int64_t n) {
  if (ActTypeFor(w) != GgmlType::kQ8_0) return nullptr;
  return reinterpret_cast<int32_t*>(out + ActScalesOffset(w, n)) + 2 * (n / kQK);
}

}  // namespace

void QuantizeActivations(const DotKernels& k, GgmlType w, const float* x, uint8_t* out, int64_t n, float outlier_threshold) {
  if (IsInt8RowType(w)) return QuantizeInt8Activations(x, nullptr, out, n, outlier_threshold);
  if (IsBnb4PairType(w)) return k.quant_bnb16(x, out, n, nullptr);
  QuantizeBlocks(k, ActTypeFor(w), x, out, Q8_0Sums(w, out, n), n);
  FillActScales(w, out, n);
}

void QuantizeActivations(const DotKernels& k, GgmlType w, const float* x, const int32_t* x_map, uint8_t* out, int64_t n,
                         float outlier_threshold) {
  if (IsInt8RowType(w)) return QuantizeInt8Activations(x, x_map, out, n, outlier_threshold);
  if (x_map == nullptr) return QuantizeActivations(k, w, x, out, n);
  if (IsBnb4PairType(w)) return QuantizeBnbAct16(x, x_map, out, n);
  // Gathered a chunk of whole blocks at a time into a buffer on the stack, each chunk converted where
  // the whole row would put it: blocks are converted independently, so the bytes are the ones the
  // gathered row would give, with no allocation and no pass over a gathered copy of the row.
  constexpr int64_t kChunk = 512;  // a multiple of every activation block (32, 256)
  alignas(64) float buf[kChunk];
  const GgmlType a = ActTypeFor(w);
  const uint64_t block_bytes = a == GgmlType::kF32 ? 4 : TypeInfo(a).block_bytes;
  const int64_t block = a == GgmlType::kF32 ? 1 : TypeInfo(a).block_size;
  int32_t* sums = Q8_0Sums(w, out, n);
  for (int64_t c0 = 0; c0 < n; c0 += kChunk) {
    const int64_t len = std::min(kChunk, n - c0);
    for (int64_t j = 0; j < len; ++j) {
      const int32_t src = x_map[c0 + j];
      buf[j] = src < 0 ? 0.0f : x[src];
    }
    QuantizeBlocks(k, a, buf, out + static_cast<uint64_t>(c0 / block) * block_bytes, sums != nullptr ? sums + c0 / kQK : nullptr, len);
  }
  FillActScales(w, out, n);
}

void QuantizeActivations(GgmlType w, const float* x, uint8_t* out, int64_t n, float outlier_threshold) {
  QuantizeActivations(ActiveDotKernels(), w, x, out, n, outlier_threshold);
}

void QuantizeActivations(GgmlType w, const float* x, const int32_t* x_map, uint8_t* out, int64_t n, float outlier_threshold) {
  QuantizeActivations(ActiveDotKernels(), w, x, x_map, out, n, outlier_threshold);
}

namespace internal {
void FillRefDotKernels(DotKernels* k) {
  FillRef(k, std::make_integer_sequence<uint32_t, kMaxTypeId>{});
  k->quant_q8_0 = [](const float* x, void* dst, int64_t n, int32_t* sums) {
    QuantizeQ8_0Ref(x, dst, n);
    if (sums == nullptr) return;
    const auto* b = static_cast<const BlockQ8_0*>(dst);
    for (int64_t i = 0; i < n / kQK; ++i) {
      int sum = 0;
      for (int j = 0; j < kQK; ++j) sum += b[i].qs[j];
      sums[i] = sum;
    }
  };
  k->quant_q8_1 = [](const float* x, void* dst, int64_t n, int32_t*) { QuantizeQ8_1Ref(x, dst, n); };
  k->quant_q8_k = [](const float* x, void* dst, int64_t n, int32_t*) { QuantizeQ8_KRef(x, dst, n); };
  k->attend[0] = AttendRef<false>;
  k->attend[1] = AttendRef<true>;
  k->swiglu = SwiGluRef;
  k->geglu = GeGluRef;
  k->attend_capped[0] = AttendCappedRef<false>;
  k->attend_capped[1] = AttendCappedRef<true>;
  FillRefGroupedKernels(k);
  FillRefBnbKernels(k);
  FillRefInt8Kernels(k);
}
}  // namespace internal

const DotKernels& DotKernelsFor(Isa isa) {
  static const DotKernels ref = [] {
    DotKernels k;
    internal::FillRefDotKernels(&k);
    return k;
  }();
  static const DotKernels avx2 = [] {
    DotKernels k = ref;
    internal::FillAvx2DotKernels(&k);
    internal::FillAvx2GroupedKernels(&k);
    internal::FillAvx2BnbKernels(&k);
    internal::FillAvx2Int8Kernels(&k);
    return k;
  }();
  static const DotKernels avx512 = [] {
    DotKernels k = ref;
    internal::FillAvx512DotKernels(&k);
    internal::FillAvx512GroupedKernels(&k);
    internal::FillAvx512BnbKernels(&k);
    internal::FillAvx512Int8Kernels(&k);
    return k;
  }();
  return isa >= Isa::kAvx512 ? avx512 : isa >= Isa::kAvx2 ? avx2 : ref;
}

const DotKernels& ActiveDotKernels() {
  static const DotKernels& k = DotKernelsFor(ActiveIsa());
  return k;
}

}  // namespace lowbit

// The scalar reference of LLM.int8 (kernels/dot_int8.h): the activation quantizer with the outlier
// split, and the row dot product every SIMD table (dot_int8_x86.inc) equals bit for bit.
#include "lowbit/kernels/dot_int8.h"

#include <algorithm>
#include <cmath>

#include "lowbit/kernels/dot.h"

namespace lowbit {

namespace {

// round-half-even(v) for |v| < 2^22, in the default rounding mode, as std::nearbyint gives it but
// without the library call: adding 1.5 * 2^23 leaves no fraction bits, so the add rounds.
inline float RoundHalfEven(float v) {
  constexpr float kMagic = 12582912.0f;
  return (v + kMagic) - kMagic;
}

// Codes of the non-outlier values: |v * inv| <= 127 up to the product's rounding; the clamp keeps a
// rounding up past 127 in range (and makes a NaN, from an infinite input, -127 rather than undefined).
inline int8_t Code(float v, float inv) {
  const float r = RoundHalfEven(v * inv);
  return static_cast<int8_t>(r > -127.0f ? (r < 127.0f ? r : 127.0f) : -127.0f);
}

}  // namespace

void QuantizeInt8Activations(const float* x, const int32_t* x_map, uint8_t* out, int64_t n, float threshold) {
  auto at = [&](int64_t i) -> float {
    if (x_map == nullptr) return x[i];
    const int32_t src = x_map[i];
    return src < 0 ? 0.0f : x[src];
  };
  const bool split = threshold > 0.0f;
  float amax = 0.0f;
  int64_t outliers = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float a = std::fabs(at(i));
    if (split && a >= threshold) ++outliers;
    else amax = std::max(amax, a);
  }
  const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
  auto* codes = reinterpret_cast<int8_t*>(out);
  uint8_t* cols = out + Int8ActHeaderOffset(n) + sizeof(Int8ActHeader);
  uint8_t* vals = cols + 4 * static_cast<uint64_t>(n);
  int32_t count = 0;
  if (outliers == 0 && x_map == nullptr) {
    for (int64_t i = 0; i < n; ++i) codes[i] = Code(x[i], inv);  // the common case, vectorized
  } else {
    for (int64_t i = 0; i < n; ++i) {
      const float v = at(i);
      if (split && std::fabs(v) >= threshold) {
        codes[i] = 0;
        const auto col = static_cast<int32_t>(i);
        std::memcpy(cols + 4 * static_cast<uint64_t>(count), &col, 4);
        std::memcpy(vals + 4 * static_cast<uint64_t>(count), &v, 4);
        ++count;
      } else {
        codes[i] = Code(v, inv);
      }
    }
  }
  for (int64_t i = n; i < static_cast<int64_t>(Int8ActHeaderOffset(n)); ++i) codes[i] = 0;
  int32_t code_sum = 0;  // |sum| <= 127 n: exact for n <= kMaxInt8Cols
  for (int64_t i = 0; i < n; ++i) code_sum += codes[i];
  const Int8ActHeader h{amax / 127.0f, count, code_sum, 0};
  std::memcpy(out + Int8ActHeaderOffset(n), &h, sizeof(h));
}

namespace {

template <int G>
float DotI8R(const uint8_t* row, const uint8_t* act, int64_t n) {
  const auto* w = reinterpret_cast<const BlockI8R<G>*>(row);
  const auto* a = reinterpret_cast<const int8_t*>(act);
  int32_t isum = 0;
  for (int64_t b = 0; b < n / G; ++b) {
    for (int j = 0; j < G; ++j) isum += static_cast<int32_t>(w[b].qs[j]) * a[b * G + j];
  }
  return Int8RowResult<G>(row, isum, act, n);
}

}  // namespace

namespace internal {
void FillRefInt8Kernels(DotKernels* k) {
  k->dot[static_cast<uint32_t>(GgmlType::kI8R32)] = DotI8R<32>;
  k->dot[static_cast<uint32_t>(GgmlType::kI8R256)] = DotI8R<256>;
}
}  // namespace internal

}  // namespace lowbit

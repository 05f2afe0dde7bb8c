#include "lowbit/quant/bnb_quant.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "lowbit/base/check.h"

namespace lowbit {
namespace {

// bitsandbytes' block absmax (fmaxf from -FLT_MAX over |x|).
float BlockAbsmax(const float* x, int64_t n) {
  float m = -FLT_MAX;
  for (int64_t i = 0; i < n; ++i) m = std::fmax(m, std::fabs(x[i]));
  return m;
}

}  // namespace

void QuantizeBnb4(Bnb4Type t, const float* x, int64_t n, int64_t blocksize, uint8_t* packed, float* absmax) {
  LOWBIT_CHECK(blocksize > 0 && blocksize % 2 == 0);
  std::memset(packed, 0, static_cast<size_t>((n + 1) / 2));
  for (int64_t b0 = 0, blk = 0; b0 < n; b0 += blocksize, ++blk) {
    const int64_t len = std::min(blocksize, n - b0);
    const float am = BlockAbsmax(x + b0, len);
    absmax[blk] = am;
    const float inv = 1.0f / am;
    // A block is even-sized, so it starts on a byte; an odd tail's last byte gets the code of 0.0,
    // as the kernels load missing elements as zero.
    for (int64_t i = 0; i < len + (len & 1); ++i) {
      const float v = i < len ? x[b0 + i] : 0.0f;
      const uint8_t q = Bnb4Encode(t, v * inv);
      const int64_t k = b0 + i;
      packed[k / 2] |= k % 2 == 0 ? static_cast<uint8_t>(q << 4) : q;
    }
  }
}

namespace {

// Weighted squared error of a block coded with scale d, and its codes into q.
double BlockError(Bnb4Type t, const float* x, const float* w, int64_t len, float d, uint8_t* q) {
  const std::array<float, 16>& levels = Bnb4Levels(t);
  const float inv = 1.0f / d;
  double err = 0;
  for (int64_t i = 0; i < len; ++i) {
    q[i] = Bnb4Encode(t, x[i] * inv);
    const double e = static_cast<double>(x[i]) - static_cast<double>(levels[q[i]] * d);
    err += (w != nullptr ? w[i] : 1.0) * e * e;
  }
  return err;
}

}  // namespace

void QuantizeBnb4Searched(Bnb4Type t, const float* x, int64_t n, int64_t blocksize, const float* col_weights, int64_t cols,
                          uint8_t* packed, float* absmax) {
  LOWBIT_CHECK(blocksize > 0 && blocksize % 2 == 0 && cols > 0);
  std::memset(packed, 0, static_cast<size_t>((n + 1) / 2));
  const std::array<float, 16>& levels = Bnb4Levels(t);
  std::vector<uint8_t> q(static_cast<size_t>(blocksize)), best_q(static_cast<size_t>(blocksize));
  std::vector<float> w(static_cast<size_t>(blocksize));
  for (int64_t b0 = 0, blk = 0; b0 < n; b0 += blocksize, ++blk) {
    const int64_t len = std::min(blocksize, n - b0);
    for (int64_t i = 0; i < len; ++i) w[i] = col_weights != nullptr ? col_weights[(b0 + i) % cols] : 1.0f;
    const float am = BlockAbsmax(x + b0, len);
    float best_d = am;
    double best = BlockError(t, x + b0, w.data(), len, am, best_q.data());
    if (am > 0) {
      for (int j = 1; j <= 16; ++j) {
        const float d = am * (1.0f - 0.0125f * static_cast<float>(j));
        const double e = BlockError(t, x + b0, w.data(), len, d, q.data());
        if (e < best) best = e, best_d = d, best_q.swap(q);
      }
      // The least-squares scale for the chosen codes.
      double num = 0, den = 0;
      for (int64_t i = 0; i < len; ++i) {
        const double l = levels[best_q[i]];
        num += w[i] * static_cast<double>(x[b0 + i]) * l;
        den += w[i] * l * l;
      }
      if (den > 0 && num > 0) {
        const auto d = static_cast<float>(num / den);
        const double e = BlockError(t, x + b0, w.data(), len, d, q.data());
        if (e < best) best = e, best_d = d, best_q.swap(q);
      }
    }
    absmax[blk] = best_d;
    for (int64_t i = 0; i < len + (len & 1); ++i) {
      const uint8_t c = i < len ? best_q[i] : Bnb4Encode(t, 0.0f * (1.0f / best_d));
      const int64_t k = b0 + i;
      packed[k / 2] |= k % 2 == 0 ? static_cast<uint8_t>(c << 4) : c;
    }
  }
}

void DequantizeBnb4(Bnb4Type t, const uint8_t* packed, std::span<const float> absmax, int64_t n, int64_t blocksize,
                    float* out) {
  const std::array<float, 16>& levels = Bnb4Levels(t);
  for (int64_t k = 0; k < n; ++k) {
    const uint8_t q = k % 2 == 0 ? packed[k / 2] >> 4 : packed[k / 2] & 0xF;
    out[k] = levels[q] * absmax[static_cast<size_t>(k / blocksize)];
  }
}

BnbNestedAbsmax DoubleQuantizeAbsmax(std::span<const float> absmax) {
  BnbNestedAbsmax r;
  const auto n = static_cast<int64_t>(absmax.size());
  if (n == 0) return r;
  double sum = 0.0;
  for (float a : absmax) sum += a;
  r.offset = static_cast<float>(sum / static_cast<double>(n));
  std::vector<float> centered(absmax.size());
  for (size_t i = 0; i < absmax.size(); ++i) centered[i] = absmax[i] - r.offset;
  const std::array<float, 256>& code = BnbDynamicMap();
  r.q.resize(absmax.size());
  r.nested_absmax.resize(static_cast<size_t>(BnbBlockCount(n, kBnbNestedBlock)));
  for (int64_t b0 = 0, blk = 0; b0 < n; b0 += kBnbNestedBlock, ++blk) {
    const int64_t len = std::min(kBnbNestedBlock, n - b0);
    const float am = BlockAbsmax(centered.data() + b0, len);
    r.nested_absmax[static_cast<size_t>(blk)] = am;
    const float inv = 1.0f / am;
    for (int64_t i = 0; i < len; ++i) r.q[static_cast<size_t>(b0 + i)] = BnbEncode8(code, centered[static_cast<size_t>(b0 + i)] * inv);
  }
  return r;
}

void DecodeNestedAbsmax(std::span<const uint8_t> q, std::span<const float> nested_absmax, float offset,
                        std::span<float> absmax) {
  DecodeBnbNestedAbsmax(q, nested_absmax, BnbDynamicMap(), offset, kBnbNestedBlock, absmax);
}

std::vector<float> QuantizeInt8Rows(const float* w, int64_t rows, int64_t cols, int8_t* q) {
  std::vector<float> scb(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = w + r * cols;
    float am = 0.0f;
    for (int64_t c = 0; c < cols; ++c) am = std::max(am, std::fabs(x[c]));
    scb[static_cast<size_t>(r)] = am;
    const float s = am > 0.0f ? 127.0f / am : 0.0f;
    for (int64_t c = 0; c < cols; ++c) {
      const float v = std::nearbyint(x[c] * s);  // the default rounding mode: half to even
      q[r * cols + c] = static_cast<int8_t>(std::clamp(v, -127.0f, 127.0f));
    }
  }
  return scb;
}

void DequantizeInt8Rows(const int8_t* q, std::span<const float> scb, int64_t rows, int64_t cols, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) out[r * cols + c] = Int8Value(q[r * cols + c], scb[static_cast<size_t>(r)]);
  }
}

}  // namespace lowbit

#include "lowbit/train/fake_quant.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>

#include "lowbit/base/check.h"
#include "lowbit/numeric/blocks.h"
#include "lowbit/numeric/half.h"
#include "lowbit/numeric/iq_tables.h"
#include "lowbit/quant/given_scale.h"

namespace lowbit::train {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

inline float H(uint16_t h) { return Fp16ToFp32(h); }

// A uniform grid: the cell is half a step each side (a zero step, a block quantized to a
// constant, says nothing about clipping: the gradient passes).
inline void Uniform(float step, float* below, float* above) {
  const float h = step == 0.0f ? kInf : std::fabs(step) * 0.5f;
  *below = h;
  *above = h;
}

void FloatCells(const uint8_t*, const float*, int64_t n, float* below, float* above) {
  std::fill(below, below + n, kInf);
  std::fill(above, above + n, kInf);
}

// Legacy 32-element blocks: one step d per block.
template <typename Block>
void Cells32(const uint8_t* blocks, const float*, int64_t n, float* below, float* above) {
  const auto* b = reinterpret_cast<const Block*>(blocks);
  for (int64_t i = 0; i < n; ++i) Uniform(H(b[i / kQK].d), below + i, above + i);
}

// K-quants with a sub-block step of 16 (Q2_K, Q3_K, Q6_K) or 32 (Q4_K, Q5_K) elements, in the
// dequantizer's element order.
void CellsQ2K(const uint8_t* blocks, const float*, int64_t n, float* below, float* above) {
  const auto* b = reinterpret_cast<const BlockQ2_K*>(blocks);
  for (int64_t i = 0; i < n; ++i) {
    const BlockQ2_K& blk = b[i / kQK_K];
    Uniform(H(blk.d) * static_cast<float>(blk.scales[(i % kQK_K) / 16] & 0xF), below + i, above + i);
  }
}

void CellsQ3K(const uint8_t* blocks, const float*, int64_t n, float* below, float* above) {
  const auto* b = reinterpret_cast<const BlockQ3_K*>(blocks);
  for (int64_t i0 = 0; i0 < n; i0 += kQK_K) {
    const BlockQ3_K& blk = b[i0 / kQK_K];
    int8_t sc[16];
    Q3KScales(blk.scales, sc);
    for (int64_t i = 0; i < kQK_K; ++i) Uniform(H(blk.d) * static_cast<float>(sc[i / 16] - 32), below + i0 + i, above + i0 + i);
  }
}

template <typename Block>
void CellsK45(const uint8_t* blocks, const float*, int64_t n, float* below, float* above) {
  const auto* b = reinterpret_cast<const Block*>(blocks);
  for (int64_t i0 = 0; i0 < n; i0 += kQK_K) {
    const Block& blk = b[i0 / kQK_K];
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      ScaleMinK4(j, blk.scales, &sc, &m);
      for (int64_t i = i0 + 32 * j; i < i0 + 32 * (j + 1); ++i) Uniform(H(blk.d) * sc, below + i, above + i);
    }
  }
}

void CellsQ6K(const uint8_t* blocks, const float*, int64_t n, float* below, float* above) {
  const auto* b = reinterpret_cast<const BlockQ6_K*>(blocks);
  for (int64_t i = 0; i < n; ++i) {
    const BlockQ6_K& blk = b[i / kQK_K];
    Uniform(H(blk.d) * static_cast<float>(blk.scales[(i % kQK_K) / 16]), below + i, above + i);
  }
}

template <typename Block>
void CellsTernary(const uint8_t* blocks, const float*, int64_t n, float* below, float* above) {
  const auto* b = reinterpret_cast<const Block*>(blocks);
  for (int64_t i = 0; i < n; ++i) Uniform(H(b[i / kQK_K].d), below + i, above + i);
}

// IQ4's non-uniform levels dl * kvalues[c]: the cell reaches half-way to each neighbouring level;
// an end level mirrors its one neighbour.
void NonUniform(float dl, int code, float* below, float* above) {
  const int8_t* kv = iq::kvalues_iq4nl;
  const float v = dl * kv[code];
  const float lo = code > 0 ? dl * kv[code - 1] : 2 * v - dl * kv[code + 1];
  const float hi = code < 15 ? dl * kv[code + 1] : 2 * v - dl * kv[code - 1];
  if (dl == 0.0f) {
    *below = *above = kInf;
    return;
  }
  // With dl < 0 the neighbours swap sides.
  *below = std::fabs(v - std::min(lo, hi)) * 0.5f;
  *above = std::fabs(std::max(lo, hi) - v) * 0.5f;
}

void CellsIQ4NL(const uint8_t* blocks, const float*, int64_t n, float* below, float* above) {
  const auto* b = reinterpret_cast<const BlockIQ4_NL*>(blocks);
  for (int64_t i = 0; i < n; ++i) {
    const BlockIQ4_NL& blk = b[i / kQK];
    const int j = static_cast<int>(i % kQK);
    const int code = j < 16 ? (blk.qs[j] & 0xF) : (blk.qs[j - 16] >> 4);
    NonUniform(H(blk.d), code, below + i, above + i);
  }
}

void CellsIQ4XS(const uint8_t* blocks, const float*, int64_t n, float* below, float* above) {
  const auto* b = reinterpret_cast<const BlockIQ4_XS*>(blocks);
  for (int64_t i = 0; i < n; ++i) {
    const BlockIQ4_XS& blk = b[i / kQK_K];
    const int e = static_cast<int>(i % kQK_K), ib = e / 32, j = e % 32;
    const uint8_t* qs = blk.qs + 16 * ib;
    const int code = j < 16 ? (qs[j] & 0xF) : (qs[j - 16] >> 4);
    NonUniform(H(blk.d) * static_cast<float>(IQ4XSScale(blk, ib)), code, below + i, above + i);
  }
}

FakeQuantFormat Row(GgmlType t, CellsFn cells, EncodeWithScalesFn enc = nullptr, float max_level = 0) {
  return {t, TypeInfo(t).name, FromFloatFor(t), ToFloatFor(t), cells, enc, enc ? kQK : 0, max_level};
}

const std::vector<FakeQuantFormat>& Table() {
  static const std::vector<FakeQuantFormat> rows = {
      Row(GgmlType::kF16, FloatCells),
      Row(GgmlType::kBF16, FloatCells),
      Row(GgmlType::kQ4_0, Cells32<BlockQ4_0>, QuantizeQ4_0WithScales, 8),
      Row(GgmlType::kQ4_1, Cells32<BlockQ4_1>),
      Row(GgmlType::kQ5_0, Cells32<BlockQ5_0>, QuantizeQ5_0WithScales, 16),
      Row(GgmlType::kQ5_1, Cells32<BlockQ5_1>),
      Row(GgmlType::kQ8_0, Cells32<BlockQ8_0>, QuantizeQ8_0WithScales, 127),
      Row(GgmlType::kQ2_K, CellsQ2K),
      Row(GgmlType::kQ3_K, CellsQ3K),
      Row(GgmlType::kQ4_K, CellsK45<BlockQ4_K>),
      Row(GgmlType::kQ5_K, CellsK45<BlockQ5_K>),
      Row(GgmlType::kQ6_K, CellsQ6K),
      Row(GgmlType::kIQ4_NL, CellsIQ4NL, QuantizeIQ4_NLWithScales, 127),
      Row(GgmlType::kIQ4_XS, CellsIQ4XS),
      Row(GgmlType::kTQ1_0, CellsTernary<BlockTQ1_0>),
      Row(GgmlType::kTQ2_0, CellsTernary<BlockTQ2_0>),
  };
  return rows;
}

}  // namespace

const FakeQuantFormat* FindFakeQuant(GgmlType type) {
  for (const FakeQuantFormat& f : Table()) {
    if (f.type == type) return f.from_float != nullptr && f.to_float != nullptr ? &f : nullptr;
  }
  return nullptr;
}

std::vector<const FakeQuantFormat*> AllFakeQuantFormats() {
  std::vector<const FakeQuantFormat*> out;
  for (const FakeQuantFormat& f : Table()) out.push_back(&f);
  return out;
}

FakeQuantTensor::FakeQuantTensor(const FakeQuantFormat& f, int64_t rows, int64_t cols)
    : f_(&f), rows_(rows), cols_(cols) {
  const auto rb = RowBytes(f.type, static_cast<uint64_t>(cols));
  LOWBIT_CHECK_MSG(rb.has_value(), "{} rows of {} elements are not whole blocks", f.name, cols);
  row_bytes_ = *rb;
  bytes_.resize(static_cast<size_t>(row_bytes_ * static_cast<uint64_t>(rows)));
  wq_.resize(static_cast<size_t>(rows * cols));
  pass_.resize(static_cast<size_t>(rows * cols));
}

void FakeQuantTensor::Refresh(const float* w, const float* imatrix, ThreadPool* pool, const float* scales) {
  LOWBIT_CHECK(scales == nullptr || f_->encode_with_scales != nullptr);
  const int64_t per_row = f_->scale_block ? cols_ / f_->scale_block : 0;
  std::atomic<int64_t> clipped{0};
  auto run = [&](size_t b, size_t e) {
    std::vector<float> below(static_cast<size_t>(cols_)), above(static_cast<size_t>(cols_));
    int64_t local = 0;
    for (size_t r = b; r < e; ++r) {
      const float* x = w + r * cols_;
      uint8_t* q = bytes_.data() + r * row_bytes_;
      float* y = wq_.data() + r * cols_;
      if (scales != nullptr) f_->encode_with_scales(x, scales + r * per_row, q, cols_);
      else f_->from_float(x, q, cols_, imatrix);
      f_->to_float(q, y, cols_);
      f_->cells(q, y, cols_, below.data(), above.data());
      uint8_t* pass = pass_.data() + r * cols_;
      for (int64_t i = 0; i < cols_; ++i) {
        const float err = x[i] - y[i];
        pass[i] = err >= -below[i] && err <= above[i];
        local += 1 - pass[i];
      }
    }
    clipped += local;
  };
  if (pool != nullptr && pool->size() > 1) pool->ParallelFor(static_cast<size_t>(rows_), run, 8);
  else run(0, static_cast<size_t>(rows_));
  clipped_ = clipped.load();
}

void FakeQuantTensor::MaskGradient(float* grad, ThreadPool*) const {
  if (clipped_ == 0) return;
  for (int64_t i = 0; i < rows_ * cols_; ++i) {
    if (!pass_[i]) grad[i] = 0.0f;
  }
}

// The fp16 d that leads each block of every free-scale format.
void FakeQuantTensor::CurrentScales(float* scales) const {
  LOWBIT_CHECK(f_->scale_block > 0);
  const uint64_t block_bytes = TypeInfo(f_->type).block_bytes;
  for (int64_t b = 0; b < scale_count(); ++b) {
    uint16_t d;
    std::memcpy(&d, bytes_.data() + static_cast<uint64_t>(b) * block_bytes, 2);
    scales[b] = H(d);
  }
}

void FakeQuantTensor::ScaleGradient(const float* w, const float* grad_wq, float* grad_scales) const {
  LOWBIT_CHECK(f_->scale_block > 0);
  const int64_t blk = f_->scale_block;
  const float g_scale = 1.0f / std::sqrt(static_cast<float>(blk) * f_->max_level);
  std::vector<float> d(static_cast<size_t>(scale_count()));
  CurrentScales(d.data());
  for (int64_t b = 0; b < scale_count(); ++b) {
    if (d[b] == 0.0f) continue;
    double g = 0;
    for (int64_t i = b * blk; i < (b + 1) * blk; ++i) {
      const float level = std::round(wq_[i] / d[b]);  // every level is an integer times d
      g += static_cast<double>(grad_wq[i]) * (pass_[i] ? level - w[i] / d[b] : level);
    }
    grad_scales[b] += g_scale * static_cast<float>(g);
  }
}

}  // namespace lowbit::train

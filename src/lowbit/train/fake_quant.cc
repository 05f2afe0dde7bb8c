#include "lowbit/train/fake_quant.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>

#include <fmt/format.h>

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

// One row of n elements re-coded on the grids its blocks hold: each element's nearest level.
void RecodeOnGrid(const GgmlGrid& g, const float* x, uint8_t* row, int64_t n, float* a, float* b, uint8_t* codes) {
  const uint64_t block_bytes = TypeInfo(g.type).block_bytes;
  for (int64_t i0 = 0; i0 < n; i0 += g.block_size) {
    uint8_t* block = row + static_cast<uint64_t>(i0 / g.block_size) * block_bytes;
    g.grid(block, a, b);
    for (int j = 0; j < g.block_size; ++j) codes[j] = static_cast<uint8_t>(g.Nearest(x[i0 + j], a[j], b[j]));
    g.set_codes(block, codes);
  }
}

FakeQuantFormat Row(GgmlType t, CellsFn cells, EncodeWithScalesFn enc = nullptr, float max_level = 0) {
  const bool lsq = enc != nullptr;
  FakeQuantFormat f{.type = t, .name = std::string(TypeInfo(t).name), .from_float = nullptr, .to_float = nullptr, .cells = std::move(cells),
                    .encode_with_scales = std::move(enc), .scale_block = lsq ? kQK : 0, .max_level = max_level};
  // Empty functions where the type has no quantizer or dequantizer (std::function from a null pointer).
  if (FromFloatFn q = FromFloatFor(t); q != nullptr) f.from_float = q;
  if (ToFloatFn d = ToFloatFor(t); d != nullptr) f.to_float = d;
  return f;
}

// The int grid's rows: one group's (fp16 d, z) per layout group, read from its first block.
struct RowGroups {
  std::vector<uint8_t> codes;
  std::vector<uint16_t> d;
  std::vector<int32_t> z;
  RowGroups(const GroupedLayout& l, const uint8_t* row)
      : codes(static_cast<size_t>(l.cols)), d(static_cast<size_t>(l.n_groups())), z(static_cast<size_t>(l.n_groups())) {
    UnpackGroupedRows(l, row, 1, codes.data(), d.data(), z.data());
  }
};

// The convention's zero point for a group with a given scale s (its own range otherwise): symmetric
// grids fix it at 2^(bits-1); asymmetric ones put the group's minimum (GPTQ: min(x, 0)) on code 0.
int32_t ZeroForScale(const float* x, int64_t n, float s, const LinearQuantSpec& spec) {
  const int maxq = spec.maxq();
  if (spec.sym) return (maxq + 1) / 2;
  float lo = x[0];
  for (int64_t i = 1; i < n; ++i) lo = std::min(lo, x[i]);
  const float z = spec.convention == QuantConvention::kGptq ? RoundHalfEven(-std::min(lo, 0.0f) / s) : -RoundHalfEven(lo / s);
  return static_cast<int32_t>(std::clamp(z, 0.0f, static_cast<float>(maxq)));
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

uint64_t FakeQuantFormat::RowBytes(int64_t cols) const {
  if (layout.has_value()) return layout->row_bytes();
  const auto rb = lowbit::RowBytes(type, static_cast<uint64_t>(cols));
  LOWBIT_CHECK_MSG(rb.has_value(), "{} rows of {} elements are not whole blocks", name, cols);
  return *rb;
}

Expected<FakeQuantFormat> IntGridFakeQuant(const LinearQuantSpec& spec, int64_t cols) {
  LOWBIT_RETURN_IF_ERROR(ValidateSpec(spec, cols));
  if (spec.grid != QuantGrid::kUniform) return Errorf("QAT on the int grid trains the uniform grid, not log2 codes");
  if (spec.granularity == QuantGranularity::kPerTensor) return Errorf("QAT on the int grid needs per-group or per-channel scales, not one per tensor");
  if (spec.scale_rounding != ScaleRounding::kF16) return Errorf("the grouped-integer rows store fp16 scales");
  const int64_t g = spec.granularity == QuantGranularity::kPerChannel ? cols : std::min(spec.group_size, cols);
  LOWBIT_ASSIGN_OR_RETURN(GroupedLayout layout, PlanGrouped(spec.bits, cols, g));
  FakeQuantFormat f{.type = layout.type,
                    .name = fmt::format("int{} g{} {}", spec.bits, g, spec.sym ? "sym" : "asym"),
                    .from_float = nullptr,
                    .to_float = nullptr,
                    .cells = nullptr};
  f.grid = spec;
  f.layout = layout;
  if (layout.padded()) f.x_map = layout.ColumnMap();
  f.scale_block = g;
  f.max_level = static_cast<float>(spec.sym ? (spec.maxq() + 1) / 2 : spec.maxq());
  f.from_float = [spec, layout](const float* x, void* dst, int64_t n, const float*) {
    LOWBIT_CHECK(n == layout.cols);
    auto q = QuantizeLinear(x, 1, n, spec);
    LOWBIT_CHECK_MSG(q.ok(), "{}", q.status().message());
    std::vector<uint16_t> d(q->scales.size());
    for (size_t i = 0; i < d.size(); ++i) d[i] = Fp32ToFp16(q->scales[i]);
    const Status st = PackGroupedRows(layout, q->codes.data(), d.data(), q->zeros.data(), 1, static_cast<uint8_t*>(dst));
    LOWBIT_CHECK_MSG(st.ok(), "{}", st.message());
  };
  const ToFloatFn stored = ToFloatFor(layout.type);
  const std::vector<int32_t> map = f.x_map;
  f.to_float = [stored, map, layout](const void* src, float* y, int64_t n) {
    LOWBIT_CHECK(n == layout.cols);
    if (map.empty()) return stored(src, y, n);
    std::vector<float> all(static_cast<size_t>(layout.stored_cols));
    stored(src, all.data(), layout.stored_cols);
    for (size_t c = 0; c < map.size(); ++c) {
      if (map[c] >= 0) y[map[c]] = all[c];
    }
  };
  f.cells = [layout](const uint8_t* row, const float*, int64_t n, float* below, float* above) {
    const RowGroups rg(layout, row);
    int64_t i = 0;
    for (int64_t grp = 0; grp < layout.n_groups(); ++grp) {
      for (int64_t c = 0; c < layout.group_cols[grp] && i < n; ++c, ++i) Uniform(H(rg.d[grp]), below + i, above + i);
    }
  };
  f.read_scales = [layout](const uint8_t* row, int64_t, float* d) {
    const RowGroups rg(layout, row);
    for (size_t grp = 0; grp < rg.d.size(); ++grp) d[grp] = H(rg.d[grp]);
  };
  f.encode_with_scales = [spec, layout](const float* x, const float* d, void* dst, int64_t n) {
    LOWBIT_CHECK(n == layout.cols);
    std::vector<uint8_t> codes(static_cast<size_t>(n));
    std::vector<uint16_t> d16(static_cast<size_t>(layout.n_groups()));
    std::vector<int32_t> z(d16.size());
    int64_t c0 = 0;
    for (int64_t grp = 0; grp < layout.n_groups(); ++grp) {
      const int64_t len = layout.group_cols[grp];
      const float s = RoundScale(d[grp], ScaleRounding::kF16);
      d16[grp] = Fp32ToFp16(s);
      const GroupParams p{s, ZeroForScale(x + c0, len, s, spec)};
      z[grp] = p.zero;
      for (int64_t c = c0; c < c0 + len; ++c) codes[c] = static_cast<uint8_t>(QuantizeCode(x[c], p, spec.maxq()));
      c0 += len;
    }
    const Status st = PackGroupedRows(layout, codes.data(), d16.data(), z.data(), 1, static_cast<uint8_t*>(dst));
    LOWBIT_CHECK_MSG(st.ok(), "{}", st.message());
  };
  return f;
}

std::vector<const FakeQuantFormat*> AllFakeQuantFormats() {
  std::vector<const FakeQuantFormat*> out;
  for (const FakeQuantFormat& f : Table()) out.push_back(&f);
  return out;
}

FakeQuantTensor::FakeQuantTensor(const FakeQuantFormat& f, int64_t rows, int64_t cols)
    : f_(f), rows_(rows), cols_(cols) {
  LOWBIT_CHECK_MSG(!f.layout.has_value() || f.layout->cols == cols, "{}: made for rows of {} columns, not {}", f.name, f.layout->cols, cols);
  row_bytes_ = f.RowBytes(cols);
  bytes_.resize(static_cast<size_t>(row_bytes_ * static_cast<uint64_t>(rows)));
  wq_.resize(static_cast<size_t>(rows * cols));
  pass_.resize(static_cast<size_t>(rows * cols));
}

void FakeQuantTensor::Refresh(const float* w, const float* imatrix, ThreadPool* pool, const float* scales) {
  LOWBIT_CHECK(scales == nullptr || f_.encode_with_scales != nullptr);
  const int64_t per_row = f_.ScalesPerRow(cols_);
  std::atomic<int64_t> clipped{0};
  auto run = [&](size_t b, size_t e) {
    std::vector<float> below(static_cast<size_t>(cols_)), above(static_cast<size_t>(cols_));
    const size_t blk = frozen_ != nullptr ? static_cast<size_t>(frozen_->block_size) : 0;
    std::vector<float> ga(blk), gb(blk);
    std::vector<uint8_t> codes(blk);
    int64_t local = 0;
    for (size_t r = b; r < e; ++r) {
      const float* x = w + r * cols_;
      uint8_t* q = bytes_.data() + r * row_bytes_;
      float* y = wq_.data() + r * cols_;
      if (frozen_ != nullptr) RecodeOnGrid(*frozen_, x, q, cols_, ga.data(), gb.data(), codes.data());
      else if (scales != nullptr) f_.encode_with_scales(x, scales + r * per_row, q, cols_);
      else f_.from_float(x, q, cols_, imatrix);
      f_.to_float(q, y, cols_);
      f_.cells(q, y, cols_, below.data(), above.data());
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

bool FakeQuantTensor::FreezeGrid() {
  if (f_.layout.has_value()) return false;  // the int grid's rows are not ggml blocks
  // Q4_0's and Q8_0's quantizers round x / d with d before its fp16 rounding, so their codes are not
  // always the nearest level of the stored grid: frozen, step 0 would not be their bytes. (Their
  // grid is one scale per block, the block's max: nothing is searched.)
  if (f_.type == GgmlType::kQ4_0 || f_.type == GgmlType::kQ8_0) return false;
  const GgmlGrid* g = GgmlGridFor(f_.type);
  if (g == nullptr || cols_ % g->block_size != 0) return false;
  frozen_ = g;
  return true;
}

void FakeQuantTensor::MaskGradient(float* grad, ThreadPool*) const {
  if (clipped_ == 0) return;
  for (int64_t i = 0; i < rows_ * cols_; ++i) {
    if (!pass_[i]) grad[i] = 0.0f;
  }
}

// The free scales of every row: the fp16 d that leads each block, or the format's own reader.
void FakeQuantTensor::CurrentScales(float* scales) const {
  LOWBIT_CHECK(f_.scale_block > 0);
  const int64_t per_row = f_.ScalesPerRow(cols_);
  const uint64_t block_bytes = TypeInfo(f_.type).block_bytes;
  for (int64_t r = 0; r < rows_; ++r) {
    const uint8_t* row = bytes_.data() + static_cast<uint64_t>(r) * row_bytes_;
    float* d = scales + r * per_row;
    if (f_.read_scales) {
      f_.read_scales(row, cols_, d);
      continue;
    }
    for (int64_t b = 0; b < per_row; ++b) {
      uint16_t h;
      std::memcpy(&h, row + static_cast<uint64_t>(b) * block_bytes, 2);
      d[b] = H(h);
    }
  }
}

void FakeQuantTensor::ScaleGradient(const float* w, const float* grad_wq, float* grad_scales) const {
  LOWBIT_CHECK(f_.scale_block > 0);
  const int64_t blk = f_.scale_block, per_row = f_.ScalesPerRow(cols_);
  const float g_scale = 1.0f / std::sqrt(static_cast<float>(blk) * f_.max_level);
  std::vector<float> d(static_cast<size_t>(scale_count()));
  CurrentScales(d.data());
  for (int64_t r = 0; r < rows_; ++r) {
    for (int64_t b = 0; b < per_row; ++b) {
      const float db = d[r * per_row + b];
      if (db == 0.0f) continue;
      double g = 0;
      for (int64_t i = r * cols_ + b * blk; i < r * cols_ + std::min((b + 1) * blk, cols_); ++i) {
        const float level = std::round(wq_[i] / db);  // every level is an integer times d
        g += static_cast<double>(grad_wq[i]) * (pass_[i] ? level - w[i] / db : level);
      }
      grad_scales[r * per_row + b] += g_scale * static_cast<float>(g);
    }
  }
}

}  // namespace lowbit::train

// Fake quantization for quantization-aware training: one row per weight format QAT trains for.
//
// The forward uses exactly the values the engine will use: a weight row is quantized with quant/'s
// from_float (the bytes `lowbit quantize` would write) and dequantized with numeric/'s to_float. The
// backward is the straight-through estimator with the clipping mask (torchao's rule): the gradient
// of the rounded value passes to the F32 master weight where the weight lies inside the rounding
// cell of its level, and is zero where the format clipped it. A row's `cells` function gives each
// element's cell from the block it was written into: half the distance to the next level below and
// above (the grid step / 2 on uniform grids; the neighbouring table values on IQ4's non-uniform
// grid; an end level's outer half-cell mirrors its inner one). Float types (F16, BF16) never clip.
//
// Learned step sizes (LSQ, Esser et al. 2019) where the format's scale is free: one fp16 d per block
// of 32 with levels L * d (Q4_0, Q5_0, Q8_0, IQ4_NL). The scales become parameters: the forward
// writes each block with its learned d (quant/given_scale.h), and d's gradient is LSQ's,
// sum over the block of dL/dwq * (L - w / d), or * L where w was clipped, times 1 / sqrt(32 * max|L|).
// The K-quants' scales are themselves quantized by a search and are not free: no row has them.
//
// The linear int-N grid (quant/linear_quant.h: bits 2..8, groups of G columns, sym/asym, the GPTQ
// convention) is a row built for its spec (IntGridFakeQuant): from_float is QuantizeLinear's RTN on
// the row, the bytes are the engine's grouped-integer rows (numeric/grouped.h, the W4G* / W8G* types
// and the input map a GPTQ folder loads into), to_float their values, cells half the group's step,
// and its free per-group fp16 scales take LSQ (the given-scale encoder keeps the convention's zero).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "lowbit/base/thread_pool.h"
#include "lowbit/base/status.h"
#include "lowbit/numeric/dequant.h"
#include "lowbit/numeric/ggml_type.h"
#include "lowbit/numeric/grouped.h"
#include "lowbit/quant/ggml_grid.h"
#include "lowbit/quant/linear_quant.h"
#include "lowbit/quant/quantize.h"

namespace lowbit::train {

// below[i], above[i]: half-widths of element i's rounding cell under and over its level, from the
// quantized blocks of n elements (wq: their dequantized values).
using CellsFn = std::function<void(const uint8_t* blocks, const float* wq, int64_t n, float* below, float* above)>;

// Encodes a row with given per-block scales d[ceil(n / scale_block)].
using EncodeWithScalesFn = std::function<void(const float* x, const float* d, void* dst, int64_t n)>;
// The scales of one encoded row of n elements, d[ceil(n / scale_block)].
using ReadScalesFn = std::function<void(const uint8_t* row, int64_t n, float* d)>;

struct FakeQuantFormat {
  GgmlType type;
  std::string name;
  std::function<void(const float* x, void* dst, int64_t n, const float* imatrix)> from_float;
  std::function<void(const void* src, float* dst, int64_t n)> to_float;
  CellsFn cells;
  EncodeWithScalesFn encode_with_scales = nullptr;  // null: the scales are not free (no LSQ)
  int64_t scale_block = 0;                          // elements per free scale
  float max_level = 0;                              // max |L|, for LSQ's gradient scale
  ReadScalesFn read_scales = nullptr;               // null: the fp16 d leading each block of the type
  // The int grid only: its spec and the layout of one row (the engine's type, stored columns and the
  // product's input map when groups are padded to whole blocks).
  std::optional<LinearQuantSpec> grid;
  std::optional<GroupedLayout> layout;
  std::vector<int32_t> x_map;  // stored column -> column, -1: padding; empty: identity

  // Bytes of one row of `cols` elements.
  uint64_t RowBytes(int64_t cols) const;
  int64_t ScalesPerRow(int64_t cols) const { return scale_block ? (cols + scale_block - 1) / scale_block : 0; }
};

// The row for a type, or nullptr when QAT cannot train for it (no from_float, e.g. the IQ lattice
// types). F32 has no row: an F32 tensor trains its master weight directly.
const FakeQuantFormat* FindFakeQuant(GgmlType type);
// The row of the linear int-N grid for rows of `cols` columns: uniform grid, per group or per channel,
// the GPTQ or AWQ convention, any range; a bad spec is an error naming what is wrong.
Expected<FakeQuantFormat> IntGridFakeQuant(const LinearQuantSpec& spec, int64_t cols);
// Every row, for tests and help text.
std::vector<const FakeQuantFormat*> AllFakeQuantFormats();

// One weight matrix's fake-quantized state, refreshed from the master weights before each step.
class FakeQuantTensor {
 public:
  FakeQuantTensor(const FakeQuantFormat& f, int64_t rows, int64_t cols);

  // Quantizes w ([rows][cols]) row by row (imatrix: per-column importance for the searching
  // quantizers, or null; scales: learned block scales [rows][cols / scale_block] for LSQ, or null:
  // the format's own choice), dequantizes, and marks the clipped elements.
  void Refresh(const float* w, const float* imatrix, ThreadPool* pool, const float* scales = nullptr);
  // From now on Refresh keeps every block's grid (scales and mins, quant/ggml_grid.h) as the last
  // Refresh wrote it and only re-picks each element's code: the level of its block's grid nearest
  // the master weight. Returns false (and changes nothing) for a format without a ggml grid row.
  bool FreezeGrid();
  bool grid_frozen() const { return frozen_ != nullptr; }
  // LSQ: the block scales of the last Refresh (to start learning from), and their gradient from the
  // gradient with respect to the dequantized values (before MaskGradient), added to grad_scales.
  int64_t scale_count() const { return rows_ * f_.ScalesPerRow(cols_); }
  void CurrentScales(float* scales) const;
  void ScaleGradient(const float* w, const float* grad_wq, float* grad_scales) const;
  // The straight-through gradient: zero where the last Refresh clipped.
  void MaskGradient(float* grad, ThreadPool* pool) const;

  const FakeQuantFormat& format() const { return f_; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  uint64_t row_bytes() const { return row_bytes_; }
  const std::vector<uint8_t>& bytes() const { return bytes_; }  // [rows][row_bytes]: what the file gets
  const std::vector<float>& values() const { return wq_; }      // [rows][cols]: dequantized
  int64_t clipped() const { return clipped_; }                  // elements masked by the last Refresh

 private:
  FakeQuantFormat f_;
  int64_t rows_, cols_;
  uint64_t row_bytes_;
  std::vector<uint8_t> bytes_;
  std::vector<float> wq_;
  std::vector<uint8_t> pass_;  // 1: the gradient passes
  int64_t clipped_ = 0;
  const GgmlGrid* frozen_ = nullptr;
};

}  // namespace lowbit::train

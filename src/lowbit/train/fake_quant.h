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
// A new format (the linear int-N grid with its bits, group and sym/asym) is one more row: its
// from_float, to_float, cells and, since its scales are free, its given-scale encoder.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "lowbit/base/thread_pool.h"
#include "lowbit/numeric/dequant.h"
#include "lowbit/numeric/ggml_type.h"
#include "lowbit/quant/quantize.h"

namespace lowbit::train {

// below[i], above[i]: half-widths of element i's rounding cell under and over its level, from the
// quantized blocks of n elements (wq: their dequantized values).
using CellsFn = void (*)(const uint8_t* blocks, const float* wq, int64_t n, float* below, float* above);

// Encodes a row with given per-block scales d[n / block].
using EncodeWithScalesFn = void (*)(const float* x, const float* d, void* dst, int64_t n);

struct FakeQuantFormat {
  GgmlType type;
  std::string_view name;
  FromFloatFn from_float;
  ToFloatFn to_float;
  CellsFn cells;
  EncodeWithScalesFn encode_with_scales = nullptr;  // null: the scales are not free (no LSQ)
  int scale_block = 0;                              // elements per free scale (the fp16 d leading each block)
  float max_level = 0;                              // max |L|, for LSQ's gradient scale
};

// The row for a type, or nullptr when QAT cannot train for it (no from_float, e.g. the IQ lattice
// types). F32 has no row: an F32 tensor trains its master weight directly.
const FakeQuantFormat* FindFakeQuant(GgmlType type);
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
  // LSQ: the block scales of the last Refresh (to start learning from), and their gradient from the
  // gradient with respect to the dequantized values (before MaskGradient), added to grad_scales.
  int64_t scale_count() const { return f_->scale_block ? rows_ * cols_ / f_->scale_block : 0; }
  void CurrentScales(float* scales) const;
  void ScaleGradient(const float* w, const float* grad_wq, float* grad_scales) const;
  // The straight-through gradient: zero where the last Refresh clipped.
  void MaskGradient(float* grad, ThreadPool* pool) const;

  const FakeQuantFormat& format() const { return *f_; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  uint64_t row_bytes() const { return row_bytes_; }
  const std::vector<uint8_t>& bytes() const { return bytes_; }  // [rows][row_bytes]: what the file gets
  const std::vector<float>& values() const { return wq_; }      // [rows][cols]: dequantized
  int64_t clipped() const { return clipped_; }                  // elements masked by the last Refresh

 private:
  const FakeQuantFormat* f_;
  int64_t rows_, cols_;
  uint64_t row_bytes_;
  std::vector<uint8_t> bytes_;
  std::vector<float> wq_;
  std::vector<uint8_t> pass_;  // 1: the gradient passes
  int64_t clipped_ = 0;
};

}  // namespace lowbit::train

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
// A new format (the linear int-N grid with its bits, group and sym/asym) is one more row: its
// from_float, to_float and cells.
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

struct FakeQuantFormat {
  GgmlType type;
  std::string_view name;
  FromFloatFn from_float;
  ToFloatFn to_float;
  CellsFn cells;
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
  // quantizers, or null), dequantizes, and marks the clipped elements.
  void Refresh(const float* w, const float* imatrix, ThreadPool* pool);
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

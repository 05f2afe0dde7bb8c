// One grouped-integer quantized Linear, unpacked: what a GPTQ or AWQ checkpoint holds for one layer,
// in GGUF orientation (row = output channel, column = input channel).
//
//   value(r, c) = scales[g * rows + r] * (codes[r * cols + c] - zeros[g * rows + r]),  g = g_idx[c]
//
// The codes are the b-bit integers exactly as stored; the scales are the stored fp16/bf16/f32 values
// exactly (as float); the zeros are the EFFECTIVE integer zero points (GPTQ v1 stores zero - 1, and
// its reader has already added the 1 back; see gptq.h for the one ambiguous case). Groups hold
// `group_size` consecutive input columns in the quantizer's column order; the last one may be partial
// (cols 288 with group 128: groups of 128, 128 and 32), and with GPTQ's act-order (desc_act) the map
// g_idx from column to group is not monotone. formats/ produces and consumes this struct; quant/,
// kernels/ (through the pipeline) and pipeline/ read it. Nothing here knows about models.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/base/status.h"

namespace lowbit {

// How the scales are (and will be) stored. kF32 appears in a few exports (GPTQModel's torch AWQ
// modules); the reference tools write fp16, newer GPTQ exports sometimes bf16.
enum class ScaleDtype { kF16, kBF16, kF32 };
std::string_view ScaleDtypeName(ScaleDtype d);  // "F16", "BF16", "F32" (safetensors names)
// True when `v` is exactly representable in `d` (every float is in kF32).
bool ScaleRepresentable(float v, ScaleDtype d);

struct IntQuantLinear {
  int bits = 4;                // 2, 3, 4, 8 (the layouts' widths; 5..7 are not GPTQ/AWQ layouts)
  int64_t rows = 0, cols = 0;  // out_features, in_features
  int64_t group_size = 128;    // columns per group; == cols for per-channel (GPTQ group_size -1)
  std::vector<uint8_t> codes;  // [rows][cols], each < 2^bits
  std::vector<float> scales;   // [n_groups][rows], the stored values exactly, as float
  std::vector<int32_t> zeros;  // [n_groups][rows], effective zero points (0 .. 2^bits)
  std::vector<int32_t> g_idx;  // [cols] group of each input column (i / group_size when monotone)
  std::vector<float> bias;     // [rows] or empty
  ScaleDtype scale_dtype = ScaleDtype::kF16;

  int64_t n_groups() const { return group_size <= 0 ? 0 : (cols + group_size - 1) / group_size; }
  int64_t group_of(int64_t c) const { return g_idx[c]; }
  float scale(int64_t g, int64_t r) const { return scales[g * rows + r]; }
  int32_t zero(int64_t g, int64_t r) const { return zeros[g * rows + r]; }
  uint8_t code(int64_t r, int64_t c) const { return codes[r * cols + c]; }
  // The dequantized weight: float(code - zero) * scale, one rounding.
  float value(int64_t r, int64_t c) const {
    const int64_t g = g_idx[c];
    return static_cast<float>(static_cast<int32_t>(codes[r * cols + c]) - zeros[g * rows + r]) *
           scales[g * rows + r];
  }
  // out[c] = value(r, c) for every column of row r.
  void DequantizeRow(int64_t r, float* out) const;
  // True when g_idx[c] == c / group_size for every column (no act-order permutation).
  bool monotone() const;
};

// i / group_size for every column (the g_idx of a checkpoint without act-order).
std::vector<int32_t> MonotoneGIdx(int64_t cols, int64_t group_size);

// Checks the struct's own invariants (sizes, code widths, zero range 0..2^bits, g_idx in range with
// every group holding exactly group_size columns, the last one the remainder, finite scales and
// bias): the first violation as one line naming `what` (a layer name), the field and the index.
Status CheckIntQuantLinear(const IntQuantLinear& q, std::string_view what);

}  // namespace lowbit

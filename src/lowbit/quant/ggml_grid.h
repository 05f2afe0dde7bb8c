// The element grid of each ggml block type lowbit writes: one row per type.
//
// Once a block's scales (and mins) are fixed, element j of the block can take exactly the values
//   value_j = a_j * Level(code) + b_j,   code in [0, n_levels),
// computed with the same float operations as the type's dequantizer (numeric/dequant.cc), so the
// value is the dequantized value bit for bit. `grid` reads (a_j, b_j) from a block, `get_codes` /
// `set_codes` read and replace the codes and nothing else. GPTQ with a ggml rounding step
// (gptq_ggml.h) fixes a block's grid with lowbit's own quantizer and then chooses the codes itself.
#pragma once

#include <cstdint>
#include <span>

#include "lowbit/numeric/ggml_type.h"

namespace lowbit {

struct GgmlGrid {
  GgmlType type;
  int block_size;     // elements per block
  int n_levels;
  int level_min;      // uniform levels: Level(k) = level_min + k
  const float* book;  // code-book levels in ascending order (IQ4), or nullptr
  void (*grid)(const void* block, float* a, float* b);
  void (*get_codes)(const void* block, uint8_t* codes);
  void (*set_codes)(void* block, const uint8_t* codes);

  float Level(int k) const { return book ? book[k] : static_cast<float>(level_min + k); }
  static float Value(float a, float b, float level) { return a * level + b; }
  // The code whose value is nearest x (ties to the lower code).
  int Nearest(float x, float a, float b) const;
};

// The row for a type, or nullptr for types without one.
const GgmlGrid* GgmlGridFor(GgmlType type);
std::span<const GgmlGrid> AllGgmlGrids();

}  // namespace lowbit

// Rows of synthetic weights for the speed probes (speed_probe.cc, prompt_probe.cc): speed depends on
// a row's type and width, not on its values, so a few rows are made and repeated.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lowbit/numeric/ggml_type.h"

namespace lowbit {

// Whether the probes can make rows of `type`: it has a quantizer from floats, or is one of the
// folder row types (W4G128, NF4G64) whose blocks are filled directly.
bool CanFillProbeRows(GgmlType type);
// Fills `buf` (`bytes`) with rows of `type`, `cols` wide: 32 rows of N(0, 1) values quantized (or
// random codes with a plausible scale), repeated.
void FillProbeRows(GgmlType type, int64_t cols, uint8_t* buf, size_t bytes);

}  // namespace lowbit

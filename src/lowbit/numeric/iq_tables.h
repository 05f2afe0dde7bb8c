// Constant tables of ggml's IQ formats (lattice grids, sign patterns, non-linear 4-bit values).
// Each grid entry packs 8 (u64) or 4 (u32) lattice coordinates, one per byte, first coordinate in
// the lowest byte; iq1s_grid bytes are signed (-1, 0, 1). Generated into iq_tables.cc.
#pragma once

#include <cstdint>

namespace lowbit::iq {

extern const uint8_t kmask_iq2xs[8];
extern const uint8_t ksigns_iq2xs[128];
extern const uint64_t iq2xxs_grid[256];
extern const uint64_t iq2xs_grid[512];
extern const uint64_t iq2s_grid[1024];
extern const uint32_t iq3xxs_grid[256];
extern const uint32_t iq3s_grid[512];
extern const uint64_t iq1s_grid[2048];
extern const int8_t kvalues_iq4nl[16];
extern const float iq1s_delta;
extern const float iq1m_delta;

}  // namespace lowbit::iq

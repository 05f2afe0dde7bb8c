// CPU feature detection (CPUID + XGETBV, so a feature counts only when the OS saves its registers)
// and the instruction-set level lowbit dispatches on.
//
// The level can be lowered for tests and comparisons with the environment variable LOWBIT_ISA
// (ref | avx2 | avx512) or SetIsaOverride(); it can never be raised above what the CPU has.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace lowbit {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512dq = false;
  bool avx512vnni = false;
  bool avx512bf16 = false;
  // The level-1 data cache of one core, in bytes (the OS's figure; 32 KiB where it gives none).
  // The 8-row decode kernels prefetch the next rows into L2 rather than L1 when the current rows and
  // the next would not fit in it together (NextRowsToL2, kernels/dot_x86_common.inc).
  uint32_t l1d_bytes = 32 * 1024;

  std::string ToString() const;  // the ISA flags, e.g. "avx2 fma f16c avx512f ..."
};

// Detected once; thread-safe.
const CpuFeatures& GetCpuFeatures();

// Dispatch levels, in increasing order.
enum class Isa { kRef = 0, kAvx2 = 1, kAvx512 = 2 };

std::string_view IsaName(Isa isa);
bool ParseIsa(std::string_view name, Isa* out);

// Highest level the CPU supports (AVX2 needs avx2+fma+f16c; AVX-512 needs F/BW/VL/DQ/VNNI too).
Isa MaxSupportedIsa();
// Every level the CPU can run, lowest first (always includes kRef).
std::vector<Isa> SupportedIsas();
// The level in effect: min(MaxSupportedIsa(), override from SetIsaOverride or LOWBIT_ISA).
Isa ActiveIsa();
// Lowers the level for this process (clamped to what the CPU supports). Call before first use of
// any dispatched kernel table.
void SetIsaOverride(Isa isa);

}  // namespace lowbit

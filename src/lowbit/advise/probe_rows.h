// Rows of synthetic weights for the speed probes (speed_probe.cc, prompt_probe.cc): speed depends on
// a row's type and width, not on its values, so a few rows are made and repeated.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>

#include "lowbit/kernels/dot.h"
#include "lowbit/numeric/ggml_type.h"

namespace lowbit {

// Whether the probes can make rows of `type`: it has a quantizer from floats, or is one of the
// folder row types (W4G128, the bitsandbytes 4-bit rows) whose blocks are filled directly.
bool CanFillProbeRows(GgmlType type);
// Fills `buf` (`bytes`) with rows of `type`, `cols` wide, `step` bytes apart (0: packed; the bytes
// between rows zero): 32 rows of N(0, 1) values quantized (or random codes with a plausible scale),
// repeated; with `interleave` (packed rows, InterleavedOf(type) set) the 32 rows are interleaved
// (numeric/interleave.h) before they are repeated, so whole groups of 8 rows from `buf` are rows of
// the interleaved type.
void FillProbeRows(GgmlType type, int64_t cols, uint8_t* buf, size_t bytes, uint64_t step = 0, bool interleave = false);
// How far apart a model held in memory lays rows of `type`, `cols` wide (ImageRowStep,
// model/shard.h): the probes time the layout a run reads.
uint64_t ProbeRowStep(GgmlType type, int64_t cols);
// The type a model in memory runs `rows` rows of `type`, `cols` wide, as with table `k`: its
// interleaved type where the table takes it (InterleavedFor, kernels/dot.h; whole groups of 8 packed
// rows), else `type`. The probes time what a run reads.
GgmlType ProbeRunType(const DotKernels& k, GgmlType type, int64_t rows, int64_t cols);
// `rows` of FillProbeRows' rows at ProbeRowStep apart from `buf` (which holds rows * that), the
// bytes between them zeroed; as `run` (ProbeRunType) holds them.
void FillProbeRowsAt(GgmlType type, int64_t cols, int64_t rows, uint8_t* buf, GgmlType run);
inline void FillProbeRowsAt(GgmlType type, int64_t cols, int64_t rows, uint8_t* buf) { FillProbeRowsAt(type, cols, rows, buf, type); }

// Anonymous memory advised for 2 MiB pages (or against them), as MappedFile::Read holds a model.
class ProbeBuffer {
 public:
  ProbeBuffer(size_t bytes, bool huge) : len_(bytes) {
    void* p = ::mmap(nullptr, len_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return;
    data_ = static_cast<uint8_t*>(p);
    ::madvise(p, len_, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  }
  ~ProbeBuffer() {
    if (data_ != nullptr) ::munmap(data_, len_);
  }
  ProbeBuffer(const ProbeBuffer&) = delete;
  ProbeBuffer& operator=(const ProbeBuffer&) = delete;
  uint8_t* data() const { return data_; }
  size_t size() const { return len_; }

 private:
  uint8_t* data_ = nullptr;
  size_t len_;
};

}  // namespace lowbit

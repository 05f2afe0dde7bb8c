// The ggml tensor type table: one row per type id that GGUF files can carry, and lowbit's internal
// rows (below).
//
// Each row gives the name llama.cpp prints, the block size (elements per block) and the block's size
// in bytes, so the byte size of any tensor can be computed (and validated) for every type, including
// types lowbit cannot yet compute with. Ids that ggml removed (4, 5, 31-33, 36-38) have no row:
// files using them are rejected with a message that says so. Computation (to_float, from_float,
// vec_dot) is attached to rows by the layers that implement it.
//
// Internal rows (`internal`): weight types that exist only in memory, never in a GGUF file. Their
// ids sit above ggml's (kFirstInternalTypeId), so they index the same per-type tables; the GGUF reader
// rejects them, the GGUF writer refuses them, and FindGgmlTypeByName does not offer them (quantize
// and convert take output types by name). Being in memory only, their ids can change freely.
//  - W4G32, W4G64, W4G128, W8G32, W8G64, W8G128: the grouped-integer types that run GPTQ / AWQ
//    weights natively (numeric/blocks.h BlockW4G / BlockW8G, numeric/grouped.h). 2- and 3-bit codes
//    go in the 4-bit container, 5- to 7-bit ones in the 8-bit container.
//  - NF4G32, NF4G64, FP4G32, FP4G64: bitsandbytes' 4-bit types (numeric/bnb.h BlockNF): G codes of
//    one row with the fp32 absmax of the bitsandbytes block they belong to (the double-quantized
//    absmax decoded once at load).
//  - NF4G64x2, FP4G64x2: the same codes two bitsandbytes blocks of 64 at a time (numeric/bnb.h
//    BlockNFx2: both absmaxes, then 128 codes in the order the int16 kernels read them), for rows
//    whose width is a multiple of 128. Activations: int16 per block of 64 (kernels/dot_bnb.h).
//  - I8R32, I8R256: LLM.int8 (bitsandbytes' 8-bit) rows (numeric/bnb.h BlockI8R): G int8 codes of one
//    row after the row's fp32 SCB (its absmax), repeated in every block so that a block range of a
//    row stands alone. Value = q * SCB / 127. Activations: per-token int8 with outliers in float
//    (kernels/dot_int8.h).
//  - Q4_Kx8, Q5_Kx8, Q2_Kx8, Q3_Kx8, Q6_Kx8, IQ4_XSx8: Q4_K / Q5_K / Q2_K / Q3_K / Q6_K / IQ4_XS with 8 rows interleaved per super-block
//    (numeric/interleave.h): the same bytes rearranged so that one 512-bit load holds 8 bytes of
//    codes of each of the 8 rows, for the 8-row kernels. Q4_0x8, Q4_1x8, Q5_0x8, Q5_1x8, IQ4_NLx8:
//    the same for the 32-element types, per 4 blocks of the 8 rows. A weight held in memory takes it
//    at load where the kernel table has its kernel.
// ggml's ids stop at 42 today; should they ever reach kFirstInternalTypeId, move these up.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace lowbit {

enum class GgmlType : uint32_t {
  kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ5_0 = 6, kQ5_1 = 7, kQ8_0 = 8, kQ8_1 = 9,
  kQ2_K = 10, kQ3_K = 11, kQ4_K = 12, kQ5_K = 13, kQ6_K = 14, kQ8_K = 15,
  kIQ2_XXS = 16, kIQ2_XS = 17, kIQ3_XXS = 18, kIQ1_S = 19, kIQ4_NL = 20, kIQ3_S = 21,
  kIQ2_S = 22, kIQ4_XS = 23, kI8 = 24, kI16 = 25, kI32 = 26, kI64 = 27, kF64 = 28,
  kIQ1_M = 29, kBF16 = 30, kTQ1_0 = 34, kTQ2_0 = 35, kMXFP4 = 39, kNVFP4 = 40,
  kQ1_0 = 41, kQ2_0 = 42,
  // Internal (in memory only; see above).
  kW4G32 = 64, kW4G64 = 65, kW4G128 = 66, kW8G32 = 67, kW8G64 = 68, kW8G128 = 69,
  kNF4G32 = 80, kNF4G64 = 81, kFP4G32 = 82, kFP4G64 = 83,
  kI8R32 = 84, kI8R256 = 85,
  kNF4G64x2 = 86, kFP4G64x2 = 87,
  kQ4_KX8 = 88, kQ5_KX8 = 89,
  kQ4_0X8 = 90, kQ4_1X8 = 91, kQ5_0X8 = 92, kQ5_1X8 = 93, kIQ4_NLX8 = 94, kQ2_KX8 = 95, kQ3_KX8 = 96, kIQ4_XSX8 = 97, kQ6_KX8 = 98,
};

inline constexpr uint32_t kFirstInternalTypeId = 64;
// One past the largest id of any row (ggml's or internal), with room for the internal types to come:
// the size of tables indexed by type id.
inline constexpr uint32_t kTypeIdLimit = 104;

struct GgmlTypeInfo {
  GgmlType type;
  std::string_view name;   // as llama.cpp prints it: "F32", "Q4_K", "IQ2_XXS"
  uint32_t block_size;     // elements per block (1 for plain types)
  uint32_t block_bytes;    // bytes per block
  bool quantized;          // a block format (needs general.quantization_version)
  bool internal = false;   // lowbit's in-memory type: never read from or written to a GGUF file

  double bits_per_weight() const { return 8.0 * block_bytes / block_size; }
};

// Every known type, in id order.
std::span<const GgmlTypeInfo> AllGgmlTypes();
// The row for an id, or nullptr for an unknown or removed id.
const GgmlTypeInfo* FindGgmlType(uint32_t id);
inline const GgmlTypeInfo& TypeInfo(GgmlType t) { return *FindGgmlType(static_cast<uint32_t>(t)); }
// Case-insensitive name lookup ("q4_k" finds Q4_K); internal rows only with include_internal.
const GgmlTypeInfo* FindGgmlTypeByName(std::string_view name, bool include_internal = false);
// For ids ggml removed: the name it had ("Q4_0_4_4"), else empty.
std::string_view RemovedGgmlTypeName(uint32_t id);

// F32, F16 or BF16: the plain float types.
inline bool IsFloatType(GgmlType t) { return t == GgmlType::kF32 || t == GgmlType::kF16 || t == GgmlType::kBF16; }

// Bytes of one row of `n` elements; nullopt if n is not a multiple of the block size.
std::optional<uint64_t> RowBytes(GgmlType t, uint64_t n);

}  // namespace lowbit

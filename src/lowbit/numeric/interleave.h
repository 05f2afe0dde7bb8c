// Weights with 8 rows interleaved (the internal type Q4_Kx8, numeric/ggml_type.h): the bytes of 8
// rows of a ggml type rearranged per block so that the 8-row kernels read each row's codes for the
// same activations in one load and decode the rows' scales together.
//
// Why (docs/PERFORMANCE.md, "Q4_K with 8 rows interleaved"): Q4_K's 8-row kernel on the file's
// layout spent a shuffle and a multiply-add per 32 codes, row and token to apply the sub-block
// scale, because each 32-bit lane summed only 4 products of its own row. Interleaved, a lane sums 16
// products of one row and sub-block (8 bytes of each of the 8 rows per 512-bit vector against the
// activations' 8 bytes broadcast), so one pack and one multiply-add apply the scales of 8 rows and
// two sub-blocks: measured on AMD Zen 4, a 4-token product in 0.53x the time and a 1-token one in
// 0.57x. llama.cpp repacks Q4_K at load for the same reason (its q4_K_8x8).
//
// Q4_Kx8, per super-block i of a group of 8 rows (1152 bytes = 8 x 144, a permutation of the rows'
// BlockQ4_K bytes, so a row reads back exactly; every 6-bit scale and min kept):
//   [0, 16)      the 8 rows' fp16 d, row r at 2r
//   [16, 32)     the 8 rows' fp16 dmin
//   [32, 96)     low nibbles: byte b = S[b] & 15 | (M[b] & 15) << 4
//   [96, 128)    high bits: byte c = S[c] >> 4 | S[c + 32] >> 4 << 2 | M[c] >> 4 << 4 | M[c + 32] >> 4 << 6
//   [128, 1152)  codes: 64 bytes per (chunk ch < 4, k < 4), row r's at 8r: its qs[32 ch + 8 k, + 8)
// with S[16 L + 4 ch + u] (L, ch, u < 4) the scale of row 2L + u % 2, sub-block 2 ch + u / 2, and
// M[32 k + 4 r + j] (k < 2, r < 8, j < 4) the min of row r, sub-block 4 k + j.
#pragma once

#include <cstdint>
#include <optional>

#include "lowbit/numeric/ggml_type.h"

namespace lowbit {

inline constexpr int kX8Rows = 8;
inline constexpr uint64_t kQ4KX8D = 0, kQ4KX8Dmin = 16, kQ4KX8Low = 32, kQ4KX8High = 96, kQ4KX8Qs = 128, kQ4KX8Bytes = 1152;

// The interleaved type of a file type (Q4_K -> Q4_Kx8), if it has one.
std::optional<GgmlType> InterleavedOf(GgmlType t);
// The file type an interleaved type holds (Q4_Kx8 -> Q4_K); any other type itself.
GgmlType StoredTypeOf(GgmlType t);
inline bool IsInterleaved(GgmlType t) { return StoredTypeOf(t) != t; }

// Rearranges `rows` packed rows of `cols` elements of file type `t` (InterleavedOf(t) set, rows a
// multiple of 8) into the interleaved type, in place.
void InterleaveRows(GgmlType t, uint8_t* data, int64_t rows, int64_t cols);
// Row `r` of an interleaved matrix (`data`, packed) in its file type's bytes: RowBytes(StoredTypeOf(t), cols) at out.
void UninterleaveRow(GgmlType t, const uint8_t* data, int64_t cols, int64_t r, uint8_t* out);

}  // namespace lowbit

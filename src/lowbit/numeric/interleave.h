// Weights with 8 rows interleaved (the internal types Q4_Kx8, Q5_Kx8, Q2_Kx8, Q3_Kx8, Q6_Kx8, IQ4_XSx8, and Q4_0x8, Q4_1x8,
// Q5_0x8, Q5_1x8, IQ4_NLx8 of the 32-element types, numeric/ggml_type.h): the
// bytes of 8 rows of a ggml type rearranged per block so that the 8-row kernels read each row's codes
// for the same activations in one load and decode the rows' scales together.
//
// Why (docs/PERFORMANCE.md, "Q4_K with 8 rows interleaved"): Q4_K's 8-row kernel on the file's
// layout spent a pack and a multiply-add per 128 codes, row pair and token to apply the sub-block
// scales, because each 32-bit lane summed only 4 products of its own row. Interleaved, a lane sums
// 16 products of one row and sub-block (8 bytes of each of the 8 rows per 512-bit vector against
// the activations' 8 bytes broadcast; Q5_K's codes up to 31 allow 8), so one pack and one
// multiply-add apply the scales of 8 rows and two sub-blocks: measured on AMD Zen 4, a 4-token Q4_K
// product in 0.59x the time and a 1-token one in 0.57x. llama.cpp repacks Q4_K at load for the same
// reason (its q4_K_8x8).
//
// Q4_Kx8 / Q5_Kx8, per super-block i of a group of 8 rows (X8Bytes: 8 x the block; every 6-bit scale
// and min kept, a bijection of the rows' block bits, so a row reads back exactly):
//   [0, 16)      the 8 rows' fp16 d, row r at 2r
//   [16, 32)     the 8 rows' fp16 dmin
//   [32, 96)     low nibbles: byte b = S[b] & 15 | (M[b] & 15) << 4
//   [96, 128)    high bits: byte c = S[c] >> 4 | S[c + 32] >> 4 << 2 | M[c] >> 4 << 4 | M[c + 32] >> 4 << 6
//   Q5_K only, [128, 384): fifth bits, 64 bytes per k < 4, row r's at 8r: its qh[8 k, + 8)
//   then the codes: 64 bytes per (chunk ch < 4, k < 4), row r's at 8r: its qs[32 ch + 8 k, + 8)
// with S[16 L + 4 ch + u] (L, ch, u < 4) the scale of row 2L + u % 2, sub-block 2 ch + u / 2, and
// M[32 k + 4 r + j] (k < 2, r < 8, j < 4) the min of row r, sub-block 4 k + j.
//
// Q2_Kx8, per super-block of the 8 rows (kX8Q2KBytes = 8 x the block):
//   [0, 16)      the 8 rows' fp16 d, row r at 2r;  [16, 32) their dmin
//   [32, 160)    the scale bytes (scale | min << 4): 64 bytes per half h < 2, 128-bit lane L holding
//                row 2L's scales[8 h, + 8) then row 2L + 1's
//   [160, 672)   the codes: 64 bytes per (h, chunk c < 4) at 160 + 256 h + 64 c, row r's qs[32 h + 8 c, + 8)
//                at 8 r (shift 2 s: elements 128 h + 32 s + 8 c .. + 7, group 8 h + 2 s + c / 2)
//
// Q3_Kx8, per super-block of the 8 rows (kX8Q3KBytes = 8 x the block; the scales are 6 bits, the
// third bits transposed, so it is a bijection of the bits rather than of the bytes):
//   [0, 16)      the 8 rows' fp16 d, row r at 2r
//   [16, 80)     low nibbles: byte b = S0[b] & 15 | (S1[b] & 15) << 4 (as Q4_Kx8's scales and mins)
//   [80, 112)    high bits: byte c = S0[c] >> 4 | S0[c + 32] >> 4 << 2 | S1[c] >> 4 << 4 | S1[c + 32] >> 4 << 6
//   [112, 368)   the third bits as 64-bit masks, 8 bytes per (h, s, c) at 112 + 32 (4 h + s) + 8 c: bit
//                8 r + j is row r's hmask[8 c + j] bit 4 h + s (the code that byte 8 r + j of the
//                codes' vector (h, c) holds at shift 2 s)
//   [368, 880)   the codes as Q2_Kx8's: 64 bytes per (h, c) at 368 + 256 h + 64 c
// with S_h[16 L + 8 u + j] (L < 4, u < 2, j < 8) row 2 L + u's 6-bit scale 8 h + j as stored (the
// signed scale + 32): lane L of S_h holds a row pair's scales of half h, as Q2_Kx8's scale bytes.
//
// Q6_Kx8, per super-block of the 8 rows (kX8Q6KBytes = 8 x the block, a permutation of its bytes):
//   [0, 16)      the 8 rows' fp16 d, row r at 2r
//   [16, 144)    the scales (int8 as stored): 64 bytes per half h < 2, 128-bit lane L holding row 2L's
//                scales[8 h, + 8) then row 2L + 1's (Q2_Kx8's scale bytes)
//   [144, 1168)  ql: 64 bytes per q < 16 at 144 + 64 q, row r's ql[8 q, + 8) at 8 r
//   [1168, 1680) qh: 64 bytes per p < 8 at 1168 + 64 p, row r's qh[8 p, + 8) at 8 r
// so that for half h and chunk c < 4, ql vectors 8 h + c and 8 h + 4 + c and qh vector 4 h + c hold
// elements 128 h + 32 s + 8 c .. + 7 (s < 4) of every row: Q6_K's four codes of a qh byte.
//
// IQ4_XSx8, per super-block of the 8 rows (kX8Iq4XsBytes = 8 x the block; 6-bit scales, a bijection
// of the bits):
//   [0, 16)      the 8 rows' fp16 d, row r at 2r
//   [16, 48)     low nibbles: byte b = M[b] & 15 | (M[b + 32] & 15) << 4
//   [48, 64)     high bits: byte c = M[c] >> 4 | M[c + 16] >> 4 << 2 | M[c + 32] >> 4 << 4 | M[c + 48] >> 4 << 6
//   [64, 1088)   the codes: 64 bytes per (sub-block j < 8, k < 2) at 64 + 128 j + 64 k, row r's
//                qs[16 j + 8 k, + 8) at 8 r (low nibbles: elements 32 j + 8 k .. + 7, high: + 16)
// with M[32 k + 4 r + j] (k < 2, r < 8, j < 4) row r's 6-bit scale of sub-block 4 k + j as stored (the
// signed scale + 32), Q4_Kx8's order of its mins.
//
// The 6-bit fields of Q4_Kx8, Q3_Kx8 and IQ4_XSx8 share one packing of n values v (n = 128: Q4_Kx8's
// scales then mins, Q3_Kx8's S0 then S1; n = 64: IQ4_XSx8's M): n / 2 bytes of low nibbles, byte b =
// v[b] & 15 | (v[b + n / 2] & 15) << 4, then n / 4 bytes of high bits, byte c = the sum over q < 4 of
// (v[c + q n / 4] >> 4) << 2 q.
//
// The 32-element types (Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL) go in groups of 4 blocks (128 columns) of the
// 8 rows, X8Group32Bytes: 32 x the block, a permutation of the blocks' bytes. With blocks 4 g + 2 p
// + b (pair p < 2, b < 2):
//   [0, 512)     the codes: 64 bytes per (p, b, half k < 2) at 256 p + 128 b + 64 k, row r's
//                qs[8 k, + 8) at 8 r (low nibbles: elements 8 k .. 8 k + 7, high: 16 + 8 k ..)
//   Q5_0 / Q5_1: fifth bits, 8 bytes per (p, b, k, h < 2) at kX8Q32Qh + 64 p + 32 b + 16 k + 8 h,
//                byte r = row r's qh[k + 2 h] (the fifth bits of the elements in the bytes above)
//   then d: fp16 of row r at X8Q32D(t) + 32 p + 2 (2 r + b)
//   Q4_1 / Q5_1: then m, the same way at X8Q32M(t)
// so that one 64-byte load holds 8 bytes of codes of each row against 8 bytes of activations
// broadcast, and the 16 block scales of a pair come in the order of the kernel's block sums.
#pragma once

#include <cstdint>
#include <optional>

#include "lowbit/numeric/ggml_type.h"

namespace lowbit {

inline constexpr int kX8Rows = 8;
inline constexpr uint64_t kX8D = 0, kX8Dmin = 16, kX8Low = 32, kX8High = 96, kX8Qh = 128;
// Where the codes start and a super-block's bytes: Q4_Kx8 (kFive false) or Q5_Kx8.
constexpr uint64_t X8Qs(bool five) { return five ? 384 : 128; }
constexpr uint64_t X8Bytes(bool five) { return five ? 8 * 176 : 8 * 144; }

inline constexpr uint64_t kX8Q2KScales = 32, kX8Q2KQs = 160, kX8Q2KBytes = 672;
inline constexpr uint64_t kX8Q3KLow = 16, kX8Q3KHigh = 80, kX8Q3KHm = 112, kX8Q3KQs = 368, kX8Q3KBytes = 880;
inline constexpr uint64_t kX8Iq4XsLow = 16, kX8Iq4XsHigh = 48, kX8Iq4XsQs = 64, kX8Iq4XsBytes = 1088;
inline constexpr uint64_t kX8Q6KScales = 16, kX8Q6KQl = 144, kX8Q6KQh = 1168, kX8Q6KBytes = 1680;

// The 32-element types' groups (see above): 4 blocks of 8 rows.
inline constexpr int64_t kX8Q32Blocks = 4;
inline constexpr uint64_t kX8Q32Qh = 512;
constexpr bool X8Q32Five(GgmlType t) { return t == GgmlType::kQ5_0 || t == GgmlType::kQ5_1; }
constexpr bool X8Q32Affine(GgmlType t) { return t == GgmlType::kQ4_1 || t == GgmlType::kQ5_1; }
constexpr uint64_t X8Q32D(GgmlType t) { return X8Q32Five(t) ? 640 : 512; }
constexpr uint64_t X8Q32M(GgmlType t) { return X8Q32D(t) + 64; }
constexpr uint64_t X8Group32Bytes(GgmlType t) { return X8Q32D(t) + (X8Q32Affine(t) ? 128 : 64); }

// The interleaved type of a file type (Q4_K -> Q4_Kx8, Q5_K -> Q5_Kx8, Q4_0 -> Q4_0x8, ...), if it has one.
std::optional<GgmlType> InterleavedOf(GgmlType t);
// The file type an interleaved type holds (Q4_Kx8 -> Q4_K, Q5_Kx8 -> Q5_K); any other type itself.
GgmlType StoredTypeOf(GgmlType t);
inline bool IsInterleaved(GgmlType t) { return StoredTypeOf(t) != t; }

// Whether rows of `cols` elements of file type t interleave (whole groups of columns).
bool InterleavesCols(GgmlType t, int64_t cols);
// Rearranges `rows` packed rows of `cols` elements of file type `t` (InterleavedOf(t) set, rows a
// multiple of 8, InterleavesCols) into the interleaved type, in place.
void InterleaveRows(GgmlType t, uint8_t* data, int64_t rows, int64_t cols);
// Row `r` of an interleaved matrix (`data`, packed) in its file type's bytes: RowBytes(StoredTypeOf(t), cols) at out.
void UninterleaveRow(GgmlType t, const uint8_t* data, int64_t cols, int64_t r, uint8_t* out);

}  // namespace lowbit

// bitsandbytes' 4-bit code books (NF4, FP4), its signed 8-bit "dynamic" code map, and lowbit's
// internal rows that run them (NF4G32 .. FP4G64, numeric/ggml_type.h).
//
// bitsandbytes stores a 4-bit weight as the flattened tensor cut into blocks of `blocksize` elements
// (32..4096), one fp32 absmax per block, two codes per byte with the first element in the HIGH
// nibble (../shared/FORMATS.md B4). Value = code_book[q] * absmax[block], one float multiply.
//
// lowbit's internal block is G (32 or 64) consecutive elements of one row with the fp32 absmax of the
// bitsandbytes block that holds them (so a bitsandbytes block of any size that is a multiple of G maps
// onto whole internal blocks when the row length is a multiple of G), and the codes in Q4_0's order:
// byte i (i < G / 2) holds element i in its low nibble and element i + G / 2 in its high nibble.
// Dequantization gives the bits bitsandbytes gives: code_book[q] * d.
//
// Where the row width is a multiple of 128, two internal blocks of 64 go together (BlockNFx2, types
// NF4G64x2 / FP4G64x2): the two absmaxes, then the 128 codes as 32 16-bit words of 4 nibbles, so
// that a 512-bit load of the 64 code bytes gives, per nibble position k, 32 word indices for one
// vpermw lookup of int16 levels (kernels/dot_bnb.h). Word w = 4i + 2b + h holds, in nibble k (bits
// 4k..4k+3), element 16k + 2i + h of block b (b = 0, 1; i < 8; h = 0, 1): the 16-bit dot lanes (word
// pairs 2j, 2j + 1) alternate between the two blocks, and each block's 16 elements 16k.. are one
// nibble position.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

#include "lowbit/base/status.h"
#include "lowbit/numeric/ggml_type.h"

namespace lowbit {

enum class Bnb4Type { kNf4, kFp4 };

std::string_view Bnb4TypeName(Bnb4Type t);  // "nf4", "fp4" (bitsandbytes' quant_type)

// The 16 levels in code order, as bitsandbytes' kernels hold them (nf4_dequantization_lut; FP4's
// fp4_dequantization_lut with the sign bit 3 applied). For FP4 this equals `get_4bit_type("fp4")`
// ([0, 0.0625, 8, 12, 4, 6, 2, 3, -0, ...] / 12 in float32) bit for bit, except that code 8 is -0.0
// there and here (tested).
const std::array<float, 16>& Bnb4Levels(Bnb4Type t);

// The nearest-level decision of bitsandbytes' quantize kernels (dQuantizeNF4 / dQuantizeFP4: a tree
// of `x > threshold` tests with its float constants), applied to x = value * (1 / absmax). NaN (an
// all-zero block: 0 * inf) gives code 0, as there.
uint8_t Bnb4Encode(Bnb4Type t, float x);

// create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): 256 sorted floats (equal to the
// published table bit for bit, tested).
const std::array<float, 256>& BnbDynamicMap();

// bitsandbytes' 8-bit code search (kernels.cu dQuantize<0>): a 7-step descent from pivot 127 keeping
// the bracket, then the final pivot against the float midpoint (upper + val) * 0.5f or
// (lower + val) * 0.5f; a value on a midpoint keeps the pivot; NaN walks down to code 0.
uint8_t BnbEncode8(const std::array<float, 256>& code, float x);

// Double quantization decoded as bitsandbytes decodes it: absmax[i] = code[q[i]] * nested[i / nested_block]
// in float, then + offset (dequantize_blockwise, then `absmax += offset`).
void DecodeBnbNestedAbsmax(std::span<const uint8_t> q, std::span<const float> nested_absmax, std::span<const float> code,
                           float offset, int64_t nested_blocksize, std::span<float> absmax);

// The internal 4-bit block (layout above). `d` is the block's absmax.
template <int G>
struct BlockNF {
  float d;
  uint8_t qs[G / 2];
};
static_assert(sizeof(BlockNF<32>) == 20 && sizeof(BlockNF<64>) == 36);

// Two internal blocks of 64 (layout above): absmaxes d[b], codes in nibble NfNibbleOf(e) of qs.
struct BlockNFx2 {
  float d[2];
  uint8_t qs[64];
};
static_assert(sizeof(BlockNFx2) == 72);

// Either block (BlockNF<G> or BlockNFx2): its elements, its absmaxes (one per bitsandbytes block of
// kNfBlockElems / kNfBlockAbsmaxes elements), and the nibble of qs (byte nibble / 2, the high half if
// odd) that holds element e: BlockNF<G> in Q4_0's order, BlockNFx2 as the layout above says.
template <typename Block>
inline constexpr int kNfBlockElems = 2 * static_cast<int>(sizeof(Block::qs));
template <typename Block>
inline constexpr int kNfBlockAbsmaxes = static_cast<int>(sizeof(Block::d) / sizeof(float));
template <int G>
float* NfAbsmaxes(BlockNF<G>& b) { return &b.d; }
template <int G>
const float* NfAbsmaxes(const BlockNF<G>& b) { return &b.d; }
inline float* NfAbsmaxes(BlockNFx2& b) { return b.d; }
inline const float* NfAbsmaxes(const BlockNFx2& b) { return b.d; }
template <int G>
constexpr int NfNibbleOf(const BlockNF<G>*, int e) {
  return e < G / 2 ? 2 * e : 2 * (e - G / 2) + 1;
}
constexpr int NfNibbleOf(const BlockNFx2*, int e) {
  const int b = e / 64, k = e % 64 / 16, i = e % 16 / 2, h = e % 2;
  return 4 * (4 * i + 2 * b + h) + k;
}
// The code in nibble `nib` of a block, and the code of element e.
template <typename Block>
int NfNibble(const Block& b, int nib) {
  return (b.qs[nib / 2] >> (4 * (nib % 2))) & 0xF;
}
template <typename Block>
int NfCode(const Block& b, int e) {
  return NfNibble(b, NfNibbleOf(&b, e));
}

inline bool IsBnb4PairType(GgmlType t) { return t == GgmlType::kNF4G64x2 || t == GgmlType::kFP4G64x2; }
inline bool IsBnb4Type(GgmlType t) {
  return t == GgmlType::kNF4G32 || t == GgmlType::kNF4G64 || t == GgmlType::kFP4G32 || t == GgmlType::kFP4G64 || IsBnb4PairType(t);
}
inline Bnb4Type Bnb4TypeOf(GgmlType t) {
  return t == GgmlType::kFP4G32 || t == GgmlType::kFP4G64 || t == GgmlType::kFP4G64x2 ? Bnb4Type::kFp4 : Bnb4Type::kNf4;
}

// The internal type that runs a [rows x cols] weight stored in bitsandbytes blocks of `blocksize`:
// G64x2 where cols is a multiple of 128 and blocksize of 64, G = 64 where cols and blocksize are
// multiples of 64, else G = 32 where both are multiples of 32;
// an error otherwise (an internal block must lie inside one bitsandbytes block and one row).
Expected<GgmlType> Bnb4RowType(Bnb4Type t, int64_t cols, int64_t blocksize);

// bitsandbytes' packed codes ((rows * cols + 1) / 2 bytes) and per-block absmax (decoded, fp32) ->
// rows of the internal type `type` (RowBytes(type, cols) bytes each) at out, and back. Exact both ways.
void PackBnb4Rows(GgmlType type, const uint8_t* packed, std::span<const float> absmax, int64_t rows, int64_t cols,
                  int64_t blocksize, uint8_t* out);
void UnpackBnb4Rows(GgmlType type, const uint8_t* rows_data, int64_t rows, int64_t cols, int64_t blocksize,
                    uint8_t* packed, std::span<float> absmax);

// LLM.int8 (load_in_8bit): a [rows][cols] int8 weight with one fp32 SCB (the row's absmax) per row;
// value = q * SCB / 127, computed as bitsandbytes' int8_vectorwise_dequant does: (q * SCB) * (1 / 127).
inline constexpr float kInv127 = 7.874015718698502e-3f;
inline float Int8Value(int8_t q, float scb) { return static_cast<float>(q) * scb * kInv127; }

// The internal LLM.int8 block: G consecutive codes of one row after that row's SCB. Every block of a
// row carries the same SCB (4 bytes per G codes: 8.125 bits per weight at G = 256), so any block
// range of a row (a tensor-parallel column shard) stands alone.
template <int G>
struct BlockI8R {
  float scb;
  int8_t qs[G];
};
static_assert(sizeof(BlockI8R<32>) == 36 && sizeof(BlockI8R<256>) == 260);

inline bool IsInt8RowType(GgmlType t) { return t == GgmlType::kI8R32 || t == GgmlType::kI8R256; }

// The internal type for rows of `cols`: I8R256 where cols is a multiple of 256, else I8R32 where it
// is a multiple of 32; an error otherwise.
Expected<GgmlType> Int8RowType(int64_t cols);
// bitsandbytes' int8 codes ([rows][cols]) and SCB (rows) -> rows of `type` at out, and back. Exact.
void PackInt8Rows(GgmlType type, const int8_t* q, std::span<const float> scb, int64_t rows, int64_t cols, uint8_t* out);
void UnpackInt8Rows(GgmlType type, const uint8_t* rows_data, int64_t rows, int64_t cols, int8_t* q, std::span<float> scb);

}  // namespace lowbit

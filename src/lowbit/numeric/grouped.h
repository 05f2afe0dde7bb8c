// The grouped-integer weight types (internal rows W4G32 .. W8G128, numeric/ggml_type.h; blocks in
// numeric/blocks.h): how a GPTQ / AWQ linear layer's codes, scales and zero points become rows of
// their blocks, the form the kernels run (kernels/dot.h).
//
// A layer arrives as codes [rows][cols] (b-bit, b = 2..8), and per group g and row r an fp16 scale
// d[g][r] and an integer zero point z[g][r]; value(r, c) = fp16(d) * (code - z) for c in group g. The
// groups are contiguous runs of columns (act-order regrouped beforehand: the caller sorts the columns
// by group and undoes it with the product's input map, kernels/matvec.h MatMulArgs::x_map). Each
// group is stored as whole blocks of the layout's block size (32, 64 or 128 columns) repeating its
// (d, z), so group sizes that are multiples of 128 (256, per channel) are exact in W*G128; a group
// whose length is not a multiple of the block (the last group of a row of 288 in groups of 128, or
// groups of 100) is padded to whole blocks. Padded columns get the code nearest z (their value is 0
// where z is a code) and the input map gives -1 for them, so the product reads zeros there.
// 2- and 3-bit codes go in the 4-bit container, 5- to 7-bit ones in the 8-bit container: exact, at
// the container's size.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/numeric/ggml_type.h"

namespace lowbit {

// The grouped type holding `bits`-bit codes (2..8) in blocks of `block` columns (32, 64 or 128).
std::optional<GgmlType> GroupedType(int bits, int block);
bool IsGroupedType(GgmlType t);
int GroupedContainerBits(GgmlType t);  // 4 or 8 (a grouped type)
int GroupedBlockSize(GgmlType t);      // 32, 64 or 128 (a grouped type)

// Where one weight's groups go in its stored rows.
struct GroupedLayout {
  GgmlType type = GgmlType::kW4G128;
  int bits = 4;                      // the codes' bits (2..8; at most the container's)
  int64_t cols = 0;                  // columns of the source rows: the sum of group_cols
  int64_t stored_cols = 0;           // columns of a stored row: whole blocks, padding included
  std::vector<int64_t> group_cols;   // columns of each group, in order
  std::vector<int64_t> group_start;  // the first stored column of each group (a multiple of the block)

  int64_t n_groups() const { return static_cast<int64_t>(group_cols.size()); }
  bool padded() const { return stored_cols != cols; }
  uint64_t row_bytes() const;
  // Stored column -> source column, -1 for padding (length stored_cols). The product's x_map is this
  // composed with the act-order permutation (source column -> input column), or this alone.
  std::vector<int32_t> ColumnMap() const;
};

// Groups of `group_size` columns (the last one shorter when group_size does not divide cols;
// group_size == cols is per channel). The block is the largest of 128, 64, 32 that divides
// group_size rounded up to a multiple of 32: 128 for 128, 256, 384, ...; 32 for 96 or 288.
Expected<GroupedLayout> PlanGrouped(int bits, int64_t cols, int64_t group_size);
// Groups of the given lengths (each at most group_size: e.g. a tensor-parallel shard's share of each
// group of an act-order weight), the block chosen from group_size as above.
Expected<GroupedLayout> PlanGrouped(int bits, std::span<const int64_t> group_cols, int64_t group_size);

// Packs `rows` rows into layout.row_bytes() bytes each at `out`. codes: [rows][layout.cols], source
// column order (group g's columns are the group_cols[g] after group g - 1's); d: [n_groups][rows] fp16
// bit patterns; z: [n_groups][rows] effective zero points. Fails, naming the row and column or group,
// on a code >= 2^bits or a zero point outside int16.
Status PackGroupedRows(const GroupedLayout& layout, const uint8_t* codes, const uint16_t* d, const int32_t* z,
                       int64_t rows, uint8_t* out);
// The inverse: codes [rows][layout.cols], d and z [n_groups][rows] back from packed rows (each group's
// first block; padding dropped). PackGroupedRows of the result gives the same bytes.
void UnpackGroupedRows(const GroupedLayout& layout, const uint8_t* in, int64_t rows, uint8_t* codes, uint16_t* d, int32_t* z);

}  // namespace lowbit

#include "lowbit/numeric/grouped.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "lowbit/base/check.h"
#include "lowbit/numeric/blocks.h"

namespace lowbit {
namespace {

// Row r's bytes from `codes`, `d`, `z` as blocks of BlockWG<kBits, G>.
template <int kBits, int G>
Status PackRow(const GroupedLayout& l, const uint8_t* codes, const uint16_t* d, const int32_t* z, int64_t r, int64_t rows,
               uint8_t* out) {
  using B = BlockWG<kBits, G>;
  auto* blocks = reinterpret_cast<B*>(out);
  const int limit = 1 << l.bits, container_max = (1 << kBits) - 1;
  int64_t src = 0;  // first source column of group g
  for (int64_t g = 0; g < l.n_groups(); ++g) {
    const int32_t zg = z[g * rows + r];
    if (zg < std::numeric_limits<int16_t>::min() || zg > std::numeric_limits<int16_t>::max()) {
      return Errorf("row {} group {}: zero point {} does not fit 16 bits", r, g, zg);
    }
    const uint8_t pad = static_cast<uint8_t>(std::clamp(zg, 0, container_max));
    const int64_t len = l.group_cols[g], first = l.group_start[g] / G;
    const int64_t n_blocks = (len + G - 1) / G;
    for (int64_t k = 0; k < n_blocks; ++k) {
      B& b = blocks[first + k];
      b.d = d[g * rows + r];
      b.z = static_cast<int16_t>(zg);
      std::memset(b.qs, 0, sizeof(b.qs));
      for (int e = 0; e < G; ++e) {
        const int64_t c = k * G + e;  // within the group
        uint8_t q = pad;
        if (c < len) {
          q = codes[r * l.cols + src + c];
          if (q >= limit) return Errorf("row {} column {}: code {} does not fit {} bits", r, src + c, q, l.bits);
        }
        if constexpr (kBits == 4) {
          b.qs[16 * (e / 32) + e % 16] |= static_cast<uint8_t>(e % 32 < 16 ? q : q << 4);
        } else {
          b.qs[e] = q;
        }
      }
    }
    src += len;
  }
  return OkStatus();
}

template <int kBits, int G>
Status PackAll(const GroupedLayout& l, const uint8_t* codes, const uint16_t* d, const int32_t* z, int64_t rows, uint8_t* out) {
  const uint64_t rb = l.row_bytes();
  for (int64_t r = 0; r < rows; ++r) LOWBIT_RETURN_IF_ERROR((PackRow<kBits, G>(l, codes, d, z, r, rows, out + r * rb)));
  return OkStatus();
}

template <int kBits, int G>
void UnpackAll(const GroupedLayout& l, const uint8_t* in, int64_t rows, uint8_t* codes, uint16_t* d, int32_t* z) {
  using B = BlockWG<kBits, G>;
  const uint64_t rb = l.row_bytes();
  for (int64_t r = 0; r < rows; ++r) {
    const auto* blocks = reinterpret_cast<const B*>(in + r * rb);
    int64_t src = 0;
    for (int64_t g = 0; g < l.n_groups(); ++g) {
      const int64_t len = l.group_cols[g], first = l.group_start[g] / G;
      d[g * rows + r] = blocks[first].d;
      z[g * rows + r] = blocks[first].z;
      for (int64_t c = 0; c < len; ++c) codes[r * l.cols + src + c] = static_cast<uint8_t>(GroupedCode(blocks[first + c / G], static_cast<int>(c % G)));
      src += len;
    }
  }
}

int BlockFor(int64_t group_size) {
  const int64_t rounded = (group_size + 31) / 32 * 32;
  return rounded % 128 == 0 ? 128 : rounded % 64 == 0 ? 64 : 32;
}

}  // namespace

std::optional<GgmlType> GroupedType(int bits, int block) {
  using enum GgmlType;
  if (bits < 2 || bits > 8) return std::nullopt;
  const bool four = bits <= 4;
  switch (block) {
    case 32: return four ? kW4G32 : kW8G32;
    case 64: return four ? kW4G64 : kW8G64;
    case 128: return four ? kW4G128 : kW8G128;
    default: return std::nullopt;
  }
}

bool IsGroupedType(GgmlType t) {
  using enum GgmlType;
  return t == kW4G32 || t == kW4G64 || t == kW4G128 || t == kW8G32 || t == kW8G64 || t == kW8G128;
}

int GroupedContainerBits(GgmlType t) {
  using enum GgmlType;
  return t == kW4G32 || t == kW4G64 || t == kW4G128 ? 4 : 8;
}

int GroupedBlockSize(GgmlType t) { return static_cast<int>(TypeInfo(t).block_size); }

uint64_t GroupedLayout::row_bytes() const { return *RowBytes(type, static_cast<uint64_t>(stored_cols)); }

std::vector<int32_t> GroupedLayout::ColumnMap() const {
  std::vector<int32_t> map(static_cast<size_t>(stored_cols), -1);
  int64_t src = 0;
  for (int64_t g = 0; g < n_groups(); ++g) {
    for (int64_t c = 0; c < group_cols[g]; ++c) map[static_cast<size_t>(group_start[g] + c)] = static_cast<int32_t>(src + c);
    src += group_cols[g];
  }
  return map;
}

Expected<GroupedLayout> PlanGrouped(int bits, std::span<const int64_t> group_cols, int64_t group_size) {
  if (bits < 2 || bits > 8) return Errorf("grouped weights hold 2- to 8-bit codes, not {}-bit", bits);
  if (group_size < 1) return Errorf("group size {} is not positive", group_size);
  if (group_cols.empty()) return Errorf("a grouped weight needs at least one group");
  const int block = BlockFor(group_size);
  GroupedLayout l;
  l.type = *GroupedType(bits, block);
  l.bits = bits;
  for (int64_t len : group_cols) {
    if (len < 0 || len > group_size) return Errorf("a group of {} columns in groups of {}", len, group_size);
    l.group_cols.push_back(len);
    l.group_start.push_back(l.stored_cols);
    l.cols += len;
    l.stored_cols += (len + block - 1) / block * block;
    if (l.stored_cols > std::numeric_limits<int32_t>::max()) return Errorf("a grouped row of more than 2^31 columns");
  }
  if (l.cols == 0) return Errorf("a grouped weight of zero columns");
  return l;
}

Expected<GroupedLayout> PlanGrouped(int bits, int64_t cols, int64_t group_size) {
  if (cols < 1) return Errorf("a grouped weight of {} columns", cols);
  if (group_size < 1) return Errorf("group size {} is not positive", group_size);
  std::vector<int64_t> lens;
  for (int64_t c = 0; c < cols; c += group_size) lens.push_back(std::min(group_size, cols - c));
  return PlanGrouped(bits, lens, group_size);
}

Status PackGroupedRows(const GroupedLayout& l, const uint8_t* codes, const uint16_t* d, const int32_t* z, int64_t rows,
                       uint8_t* out) {
  using enum GgmlType;
  switch (l.type) {
    case kW4G32: return PackAll<4, 32>(l, codes, d, z, rows, out);
    case kW4G64: return PackAll<4, 64>(l, codes, d, z, rows, out);
    case kW4G128: return PackAll<4, 128>(l, codes, d, z, rows, out);
    case kW8G32: return PackAll<8, 32>(l, codes, d, z, rows, out);
    case kW8G64: return PackAll<8, 64>(l, codes, d, z, rows, out);
    case kW8G128: return PackAll<8, 128>(l, codes, d, z, rows, out);
    default: return Errorf("{} is not a grouped-integer type", TypeInfo(l.type).name);
  }
}

void UnpackGroupedRows(const GroupedLayout& l, const uint8_t* in, int64_t rows, uint8_t* codes, uint16_t* d, int32_t* z) {
  using enum GgmlType;
  switch (l.type) {
    case kW4G32: return UnpackAll<4, 32>(l, in, rows, codes, d, z);
    case kW4G64: return UnpackAll<4, 64>(l, in, rows, codes, d, z);
    case kW4G128: return UnpackAll<4, 128>(l, in, rows, codes, d, z);
    case kW8G32: return UnpackAll<8, 32>(l, in, rows, codes, d, z);
    case kW8G64: return UnpackAll<8, 64>(l, in, rows, codes, d, z);
    case kW8G128: return UnpackAll<8, 128>(l, in, rows, codes, d, z);
    default: LOWBIT_CHECK_MSG(false, "{} is not a grouped-integer type", TypeInfo(l.type).name);
  }
}

}  // namespace lowbit

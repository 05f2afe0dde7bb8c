#include "lowbit/numeric/interleave.h"

#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "lowbit/base/check.h"
#include "lowbit/numeric/blocks.h"

namespace lowbit {
namespace {

static_assert(X8Bytes(false) == kX8Rows * sizeof(BlockQ4_K) && X8Bytes(true) == kX8Rows * sizeof(BlockQ5_K));
static_assert(X8Qs(true) == kX8Qh + 4 * 64);

inline int SIndex(int r, int sub) { return 16 * (r / 2) + 4 * (sub / 2) + r % 2 + 2 * (sub % 2); }
inline int MIndex(int r, int sub) { return 32 * (sub / 4) + 4 * r + sub % 4; }

// n six-bit values v in the groups' packing (interleave.h): n / 2 bytes of low nibbles, n / 4 of high bits.
void PackSix(const uint8_t* v, int n, uint8_t* low, uint8_t* high) {
  for (int b = 0; b < n / 2; ++b) low[b] = static_cast<uint8_t>((v[b] & 15) | (v[b + n / 2] & 15) << 4);
  for (int c = 0; c < n / 4; ++c) {
    int byte = 0;
    for (int q = 0; q < 4; ++q) byte |= (v[c + q * n / 4] >> 4) << (2 * q);
    high[c] = static_cast<uint8_t>(byte);
  }
}

// Value idx back from that packing.
uint8_t SixOf(const uint8_t* low, const uint8_t* high, int n, int idx) {
  const int nibble = idx < n / 2 ? low[idx] & 15 : low[idx - n / 2] >> 4;
  return static_cast<uint8_t>(nibble | ((high[idx % (n / 4)] >> (2 * (idx / (n / 4)))) & 3) << 4);
}

// Copies n bytes between a block field and a group at offset `at`: into the group (kToGroup) or
// out of it (the one map serves both directions).
template <bool kToGroup>
struct GroupMove {
  std::conditional_t<kToGroup, uint8_t*, const uint8_t*> group;
  void operator()(uint64_t at, void* field, size_t n) const {
    if constexpr (kToGroup) std::memcpy(group + at, field, n);
    else std::memcpy(field, group + at, n);
  }
};

// The codes of row r of a super-block type's group (Q2_Kx8, Q3_Kx8, Q6_Kx8, IQ4_XSx8): the code vector q
// (at `at` + 64 q) holds bytes [8 q, 8 q + 8) of every row's qs, row r's at 8 r.
template <bool kToGroup>
void MoveCodes(const GroupMove<kToGroup>& move, uint64_t at, uint64_t r, uint8_t* qs, uint64_t qs_bytes) {
  for (uint64_t q = 0; q < qs_bytes / 8; ++q) move(at + 64 * q + 8 * r, qs + 8 * q, 8);
}

// Row r's 16 per-group bytes (Q2_K's scale bytes, Q6_K's scales) by row pairs: 64 bytes per half h at
// `at` + 64 h, 128-bit lane L holding row 2L's bytes [8 h, 8 h + 8) then row 2L + 1's.
template <bool kToGroup, typename Byte>
void MoveRowPairBytes(const GroupMove<kToGroup>& move, uint64_t at, uint64_t r, Byte* bytes) {
  for (uint64_t h = 0; h < 2; ++h) move(at + 64 * h + 16 * (r / 2) + 8 * (r % 2), bytes + 8 * h, 8);
}

// ---- Q4_K / Q5_K (B; interleave.h): one super-block of the 8 rows, blocks[r] (rows [r0, r1); into
// the group all 8, since a byte of its scales holds bits of several rows) to the group (kToGroup) or back.
template <bool kToGroup, typename B>
void MoveK45(std::conditional_t<kToGroup, uint8_t*, const uint8_t*> group, B* const* blocks, uint64_t r0, uint64_t r1) {
  constexpr bool kFive = std::is_same_v<B, BlockQ5_K>;
  const GroupMove<kToGroup> move{group};
  uint8_t v[128];  // the scales at SIndex, then the mins at 64 + MIndex
  for (uint64_t r = r0; r < r1; ++r) {
    B& b = *blocks[r];
    const int row = static_cast<int>(r);
    move(kX8D + 2 * r, &b.d, 2);
    move(kX8Dmin + 2 * r, &b.dmin, 2);
    if constexpr (kFive) MoveCodes(move, kX8Qh, r, b.qh, sizeof(b.qh));
    MoveCodes(move, X8Qs(kFive), r, b.qs, sizeof(b.qs));
    if constexpr (kToGroup) {
      for (int j = 0; j < 8; ++j) ScaleMinK4(j, b.scales, &v[SIndex(row, j)], &v[64 + MIndex(row, j)]);
    } else {
      int sc[8], mn[8];
      for (int j = 0; j < 8; ++j) {
        sc[j] = SixOf(group + kX8Low, group + kX8High, 128, SIndex(row, j));
        mn[j] = SixOf(group + kX8Low, group + kX8High, 128, 64 + MIndex(row, j));
      }
      PackK4Scales(sc, mn, b.scales);
    }
  }
  if constexpr (kToGroup) PackSix(v, 128, group + kX8Low, group + kX8High);
}

// ---- Q2_K (interleave.h): one super-block of the 8 rows, blocks[r] (rows [r0, r1)) to their places
// in `group` (kToGroup) or back.
template <bool kToGroup>
void MoveQ2K(std::conditional_t<kToGroup, uint8_t*, const uint8_t*> group, BlockQ2_K* const* blocks, uint64_t r0, uint64_t r1) {
  static_assert(kX8Q2KBytes == kX8Rows * sizeof(BlockQ2_K) && kX8Q2KQs == kX8Q2KScales + 2 * 64);
  const GroupMove<kToGroup> move{group};
  for (uint64_t r = r0; r < r1; ++r) {
    BlockQ2_K& b = *blocks[r];
    move(kX8D + 2 * r, &b.d, 2);
    move(kX8Dmin + 2 * r, &b.dmin, 2);
    MoveRowPairBytes(move, kX8Q2KScales, r, b.scales);
    MoveCodes(move, kX8Q2KQs, r, b.qs, sizeof(b.qs));
  }
}

// ---- Q6_K (interleave.h): one super-block of the 8 rows, as MoveQ2K.
template <bool kToGroup>
void MoveQ6K(std::conditional_t<kToGroup, uint8_t*, const uint8_t*> group, BlockQ6_K* const* blocks, uint64_t r0, uint64_t r1) {
  static_assert(kX8Q6KBytes == kX8Rows * sizeof(BlockQ6_K) && kX8Q6KQl == kX8Q6KScales + 2 * 64 && kX8Q6KQh == kX8Q6KQl + 16 * 64);
  const GroupMove<kToGroup> move{group};
  for (uint64_t r = r0; r < r1; ++r) {
    BlockQ6_K& b = *blocks[r];
    move(kX8D + 2 * r, &b.d, 2);
    MoveRowPairBytes(move, kX8Q6KScales, r, b.scales);
    MoveCodes(move, kX8Q6KQl, r, b.ql, sizeof(b.ql));
    MoveCodes(move, kX8Q6KQh, r, b.qh, sizeof(b.qh));
  }
}

// ---- Q3_K (interleave.h).

// Row r's scale j in S_{j / 8}, and the byte of third-bit mask (h, s, c) that holds row r's bits.
inline int Q3KSIndex(int r, int j) { return 16 * (r / 2) + 8 * (r % 2) + j % 8; }
inline uint64_t Q3KHmAt(int h, int s, int c, int r) { return kX8Q3KHm + 32 * static_cast<uint64_t>(4 * h + s) + 8 * static_cast<uint64_t>(c) + static_cast<uint64_t>(r); }

// One super-block of the 8 rows, blocks[r] (rows [r0, r1); into the group all 8, since a byte of
// its scales holds bits of several rows) to the group (kToGroup) or back.
template <bool kToGroup>
void MoveQ3K(std::conditional_t<kToGroup, uint8_t*, const uint8_t*> group, BlockQ3_K* const* blocks, uint64_t r0, uint64_t r1) {
  static_assert(kX8Q3KBytes == kX8Rows * sizeof(BlockQ3_K) && kX8Q3KHigh == kX8Q3KLow + 64 && kX8Q3KHm == kX8Q3KHigh + 32 &&
                kX8Q3KQs == kX8Q3KHm + 256);
  const GroupMove<kToGroup> move{group};
  uint8_t s[128];  // S0, then S1
  for (uint64_t r = r0; r < r1; ++r) {
    BlockQ3_K& b = *blocks[r];
    const int row = static_cast<int>(r);
    move(kX8D + 2 * r, &b.d, 2);
    MoveCodes(move, kX8Q3KQs, r, b.qs, sizeof(b.qs));
    if constexpr (kToGroup) {
      int8_t sc[16];  // as stored: + 32
      Q3KScales(b.scales, sc);
      for (int j = 0; j < 16; ++j) s[64 * (j / 8) + Q3KSIndex(row, j)] = static_cast<uint8_t>(sc[j]);
    } else {
      int sc[16];
      for (int j = 0; j < 16; ++j) sc[j] = SixOf(group + kX8Q3KLow, group + kX8Q3KHigh, 128, 64 * (j / 8) + Q3KSIndex(row, j));
      PackQ3KScales(sc, b.scales);
      std::memset(b.hmask, 0, sizeof(b.hmask));
    }
    for (int h = 0; h < 2; ++h) {
      for (int sh = 0; sh < 4; ++sh) {
        const int bit = 4 * h + sh;
        for (int c = 0; c < 4; ++c) {
          const uint64_t at = Q3KHmAt(h, sh, c, row);
          if constexpr (kToGroup) group[at] = 0;
          for (int j = 0; j < 8; ++j) {
            uint8_t& hm = b.hmask[8 * c + j];
            if constexpr (kToGroup) group[at] = static_cast<uint8_t>(group[at] | ((hm >> bit) & 1) << j);
            else hm = static_cast<uint8_t>(hm | ((group[at] >> j) & 1) << bit);
          }
        }
      }
    }
  }
  if constexpr (kToGroup) PackSix(s, 128, group + kX8Q3KLow, group + kX8Q3KHigh);
}

// ---- IQ4_XS (interleave.h): one super-block of the 8 rows, as MoveQ3K.
template <bool kToGroup>
void MoveIq4Xs(std::conditional_t<kToGroup, uint8_t*, const uint8_t*> group, BlockIQ4_XS* const* blocks, uint64_t r0, uint64_t r1) {
  static_assert(kX8Iq4XsBytes == kX8Rows * sizeof(BlockIQ4_XS) && kX8Iq4XsHigh == kX8Iq4XsLow + 32 && kX8Iq4XsQs == kX8Iq4XsHigh + 16);
  const GroupMove<kToGroup> move{group};
  uint8_t m[64];
  for (uint64_t r = r0; r < r1; ++r) {
    BlockIQ4_XS& b = *blocks[r];
    const int row = static_cast<int>(r);
    move(kX8D + 2 * r, &b.d, 2);
    MoveCodes(move, kX8Iq4XsQs, r, b.qs, sizeof(b.qs));
    const auto at = [row](int j) { return 32 * (j / 4) + 4 * row + j % 4; };  // M's index of sub-block j
    if constexpr (kToGroup) {
      for (int j = 0; j < 8; ++j) m[at(j)] = static_cast<uint8_t>(IQ4XSScale(b, j) + 32);
    } else {
      int sc[8];
      for (int j = 0; j < 8; ++j) sc[j] = SixOf(group + kX8Iq4XsLow, group + kX8Iq4XsHigh, 64, at(j)) - 32;
      SetIQ4XSScales(&b, sc);
    }
  }
  if constexpr (kToGroup) PackSix(m, 64, group + kX8Iq4XsLow, group + kX8Iq4XsHigh);
}

// ---- The 32-element types: groups of 4 blocks of 8 rows (interleave.h).

// The fields of blocks[r][j] (rows r in [r0, r1), block j < 4) to their places in a group (kToGroup)
// or back.
template <GgmlType T, bool kToGroup>
void Move32(std::conditional_t<kToGroup, uint8_t*, const uint8_t*> group, typename BlockOf<T>::type* const* blocks, uint64_t r0,
            uint64_t r1) {
  constexpr bool kFive = X8Q32Five(T), kAffine = X8Q32Affine(T);
  const GroupMove<kToGroup> move{group};
  for (uint64_t r = r0; r < r1; ++r) {
    for (uint64_t j = 0; j < kX8Q32Blocks; ++j) {
      auto& blk = blocks[r][j];
      const uint64_t p = j / 2, b = j % 2;
      move(X8Q32D(T) + 32 * p + 2 * (2 * r + b), &blk.d, 2);
      if constexpr (kAffine) move(X8Q32M(T) + 32 * p + 2 * (2 * r + b), &blk.m, 2);
      for (uint64_t k = 0; k < 2; ++k) {
        move(256 * p + 128 * b + 64 * k + 8 * r, blk.qs + 8 * k, 8);
        if constexpr (kFive) {
          for (uint64_t h = 0; h < 2; ++h) move(kX8Q32Qh + 64 * p + 32 * b + 16 * k + 8 * h + r, blk.qh + k + 2 * h, 1);
        }
      }
    }
  }
}

// The rows in groups of 8 rows x kBlocks blocks of B (8 kBlocks blocks' bytes each): place(out,
// blocks) writes one group from blocks[r] (row r's kBlocks blocks, a copy), in place of the rows.
template <typename B, int64_t kBlocks, typename Place>
void InterleaveGroups(uint8_t* data, int64_t rows, int64_t nb, Place place) {
  const uint64_t row_bytes = static_cast<uint64_t>(nb) * sizeof(B);
  std::vector<B> copy(static_cast<size_t>(kX8Rows * nb));
  for (int64_t g = 0; g < rows; g += kX8Rows) {
    uint8_t* at = data + static_cast<uint64_t>(g) * row_bytes;
    std::memcpy(copy.data(), at, kX8Rows * row_bytes);
    for (int64_t i = 0; i < nb; i += kBlocks) {
      B* blocks[kX8Rows];
      for (int r = 0; r < kX8Rows; ++r) blocks[r] = copy.data() + r * nb + i;
      place(at + static_cast<uint64_t>(i) * kX8Rows * sizeof(B), blocks);
    }
  }
}

// Row r of such groups back, nb blocks at out: take(group, q, blocks) puts row q = r % 8's kBlocks
// blocks of one group at blocks[q] (the other rows are not touched).
template <typename B, int64_t kBlocks, typename Take>
void UninterleaveGroups(const uint8_t* data, int64_t nb, int64_t r, uint8_t* out, Take take) {
  const uint8_t* rows = data + static_cast<uint64_t>(r / kX8Rows) * kX8Rows * static_cast<uint64_t>(nb) * sizeof(B);
  const uint64_t q = static_cast<uint64_t>(r % kX8Rows);
  B* blocks[kX8Rows] = {};
  for (int64_t i = 0; i < nb; i += kBlocks) {
    blocks[q] = reinterpret_cast<B*>(out) + i;
    take(rows + static_cast<uint64_t>(i) * kX8Rows * sizeof(B), q, blocks);
  }
}

// The interleaved types and their file types.
constexpr std::pair<GgmlType, GgmlType> kPairs[] = {
    {GgmlType::kQ4_K, GgmlType::kQ4_KX8},   {GgmlType::kQ5_K, GgmlType::kQ5_KX8},   {GgmlType::kQ2_K, GgmlType::kQ2_KX8},
    {GgmlType::kQ3_K, GgmlType::kQ3_KX8},   {GgmlType::kQ6_K, GgmlType::kQ6_KX8},   {GgmlType::kIQ4_XS, GgmlType::kIQ4_XSX8},
    {GgmlType::kQ4_0, GgmlType::kQ4_0X8},
    {GgmlType::kQ4_1, GgmlType::kQ4_1X8},   {GgmlType::kQ5_0, GgmlType::kQ5_0X8},   {GgmlType::kQ5_1, GgmlType::kQ5_1X8},
    {GgmlType::kIQ4_NL, GgmlType::kIQ4_NLX8},
};

// Calls f(std::integral_constant<GgmlType, T>) for the file type t of an interleaved type (kPairs).
template <typename F>
void WithFileType(GgmlType t, F&& f) {
  using enum GgmlType;
  switch (t) {
    case kQ4_K: f(std::integral_constant<GgmlType, kQ4_K>{}); break;
    case kQ5_K: f(std::integral_constant<GgmlType, kQ5_K>{}); break;
    case kQ2_K: f(std::integral_constant<GgmlType, kQ2_K>{}); break;
    case kQ3_K: f(std::integral_constant<GgmlType, kQ3_K>{}); break;
    case kQ6_K: f(std::integral_constant<GgmlType, kQ6_K>{}); break;
    case kIQ4_XS: f(std::integral_constant<GgmlType, kIQ4_XS>{}); break;
    case kQ4_0: f(std::integral_constant<GgmlType, kQ4_0>{}); break;
    case kQ4_1: f(std::integral_constant<GgmlType, kQ4_1>{}); break;
    case kQ5_0: f(std::integral_constant<GgmlType, kQ5_0>{}); break;
    case kQ5_1: f(std::integral_constant<GgmlType, kQ5_1>{}); break;
    case kIQ4_NL: f(std::integral_constant<GgmlType, kIQ4_NL>{}); break;
    default: LOWBIT_CHECK_MSG(false, "{} has no interleaved form", TypeInfo(t).name);
  }
}

// Blocks per group of file type T: the 32-element types' kX8Q32Blocks, else one super-block.
template <GgmlType T>
constexpr int64_t kGroupBlocks = T == GgmlType::kQ4_0 || T == GgmlType::kQ4_1 || T == GgmlType::kQ5_0 || T == GgmlType::kQ5_1 ||
                                         T == GgmlType::kIQ4_NL
                                     ? kX8Q32Blocks
                                     : 1;

// One group of file type T: blocks[r] (rows [r0, r1), kGroupBlocks each) to it (kToGroup) or back.
template <GgmlType T, bool kToGroup>
void Move(std::conditional_t<kToGroup, uint8_t*, const uint8_t*> group, typename BlockOf<T>::type* const* blocks, uint64_t r0,
          uint64_t r1) {
  using enum GgmlType;
  if constexpr (T == kQ4_K || T == kQ5_K) MoveK45<kToGroup>(group, blocks, r0, r1);
  else if constexpr (T == kQ2_K) MoveQ2K<kToGroup>(group, blocks, r0, r1);
  else if constexpr (T == kQ3_K) MoveQ3K<kToGroup>(group, blocks, r0, r1);
  else if constexpr (T == kQ6_K) MoveQ6K<kToGroup>(group, blocks, r0, r1);
  else if constexpr (T == kIQ4_XS) MoveIq4Xs<kToGroup>(group, blocks, r0, r1);
  else Move32<T, kToGroup>(group, blocks, r0, r1);
}

bool IsSuperBlock(GgmlType t) { return TypeInfo(t).block_size == 256; }

}  // namespace

std::optional<GgmlType> InterleavedOf(GgmlType t) {
  for (const auto& [file, x8] : kPairs) {
    if (file == t) return x8;
  }
  return std::nullopt;
}

GgmlType StoredTypeOf(GgmlType t) {
  for (const auto& [file, x8] : kPairs) {
    if (x8 == t) return file;
  }
  return t;
}

bool InterleavesCols(GgmlType t, int64_t cols) {
  if (!InterleavedOf(t)) return false;
  return cols > 0 && cols % (IsSuperBlock(t) ? 256 : 32 * kX8Q32Blocks) == 0;
}

void InterleaveRows(GgmlType t, uint8_t* data, int64_t rows, int64_t cols) {
  LOWBIT_CHECK_MSG(rows % kX8Rows == 0 && InterleavesCols(t, cols), "cannot interleave {} rows of {} x {}", TypeInfo(t).name, rows, cols);
  const int64_t nb = cols / TypeInfo(t).block_size;
  WithFileType(t, [&](auto type) {
    constexpr GgmlType T = decltype(type)::value;
    using B = typename BlockOf<T>::type;
    InterleaveGroups<B, kGroupBlocks<T>>(data, rows, nb, [](uint8_t* g, B* const* b) { Move<T, true>(g, b, 0, kX8Rows); });
  });
}

void UninterleaveRow(GgmlType t, const uint8_t* data, int64_t cols, int64_t r, uint8_t* out) {
  const GgmlType file = StoredTypeOf(t);
  LOWBIT_CHECK_MSG(file != t && InterleavesCols(file, cols), "{} is not an interleaved type of width {}", TypeInfo(t).name, cols);
  const int64_t nb = cols / TypeInfo(file).block_size;
  WithFileType(file, [&](auto type) {
    constexpr GgmlType T = decltype(type)::value;
    using B = typename BlockOf<T>::type;
    UninterleaveGroups<B, kGroupBlocks<T>>(data, nb, r, out, [](const uint8_t* g, uint64_t q, B* const* b) { Move<T, false>(g, b, q, q + 1); });
  });
}

}  // namespace lowbit

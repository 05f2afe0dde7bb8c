// The grouped-integer weight types (W4G32 .. W8G128): their rows in the type table, their blocks,
// dequantization exact to fp16(d) * (q - z), and the packing of a GPTQ / AWQ layer's codes, scales
// and zero points into rows of blocks (numeric/grouped.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "lowbit/numeric/blocks.h"
#include "lowbit/numeric/dequant.h"
#include "lowbit/numeric/ggml_type.h"
#include "lowbit/numeric/grouped.h"
#include "lowbit/numeric/half.h"

namespace lowbit {
namespace {

using enum GgmlType;

TEST(GroupedTypes, AreInternalRowsAboveGgmlIds) {
  struct Want { GgmlType t; const char* name; uint32_t block, bytes; size_t struct_bytes; int bits; };
  const Want want[] = {{kW4G32, "W4G32", 32, 20, sizeof(BlockW4G<32>), 4},   {kW4G64, "W4G64", 64, 36, sizeof(BlockW4G<64>), 4},
                       {kW4G128, "W4G128", 128, 68, sizeof(BlockW4G<128>), 4}, {kW8G32, "W8G32", 32, 36, sizeof(BlockW8G<32>), 8},
                       {kW8G64, "W8G64", 64, 68, sizeof(BlockW8G<64>), 8},   {kW8G128, "W8G128", 128, 132, sizeof(BlockW8G<128>), 8}};
  for (const Want& w : want) {
    const GgmlTypeInfo* t = FindGgmlType(static_cast<uint32_t>(w.t));
    ASSERT_NE(t, nullptr) << w.name;
    EXPECT_EQ(t->name, w.name);
    EXPECT_EQ(t->block_size, w.block);
    EXPECT_EQ(t->block_bytes, w.bytes);
    EXPECT_EQ(t->block_bytes, w.struct_bytes);
    EXPECT_TRUE(t->internal);
    EXPECT_TRUE(t->quantized);
    EXPECT_GE(static_cast<uint32_t>(w.t), kFirstInternalTypeId);
    EXPECT_LT(static_cast<uint32_t>(w.t), kFirstInternalTypeId + 16);  // the ids after them are left for bitsandbytes
    // Names a user types find only GGUF types; lowbit's own code can ask for the internal rows.
    EXPECT_EQ(FindGgmlTypeByName(w.name), nullptr);
    EXPECT_EQ(FindGgmlTypeByName(w.name, /*include_internal=*/true), t);
    EXPECT_TRUE(IsGroupedType(w.t));
    EXPECT_EQ(GroupedContainerBits(w.t), w.bits);
    EXPECT_EQ(GroupedBlockSize(w.t), static_cast<int>(w.block));
    EXPECT_EQ(GroupedType(w.bits, static_cast<int>(w.block)), w.t);
    ASSERT_NE(ToFloatFor(w.t), nullptr);
  }
  for (const GgmlTypeInfo& t : AllGgmlTypes()) {
    EXPECT_EQ(t.internal, static_cast<uint32_t>(t.type) >= kFirstInternalTypeId) << t.name;
    EXPECT_LT(static_cast<uint32_t>(t.type), kTypeIdLimit);
    EXPECT_TRUE(t.internal || !IsGroupedType(t.type)) << t.name;
  }
  EXPECT_EQ(GroupedType(2, 128), kW4G128);
  EXPECT_EQ(GroupedType(3, 32), kW4G32);
  EXPECT_EQ(GroupedType(5, 64), kW8G64);
  EXPECT_EQ(GroupedType(7, 128), kW8G128);
  EXPECT_FALSE(GroupedType(1, 128).has_value());
  EXPECT_FALSE(GroupedType(9, 128).has_value());
  EXPECT_FALSE(GroupedType(4, 256).has_value());
}

// value(e) = fp16(d) * (q - z), computed here in double (exact: an 11-bit significand times an
// integer of at most 17 bits) and rounded once, against the dequantizer.
template <int kBits, int G>
void CheckDequant(GgmlType t, std::mt19937& rng) {
  using B = BlockWG<kBits, G>;
  const int max_code = (1 << kBits) - 1;
  std::uniform_int_distribution<int> code(0, max_code);
  std::normal_distribution<float> nd(0.0f, 0.01f);
  const int16_t zeros[] = {0, static_cast<int16_t>(1 << kBits), static_cast<int16_t>(1 << (kBits - 1)), -7, 32767, -32768};
  std::vector<B> blocks(std::size(zeros) + 3);
  for (size_t i = 0; i < blocks.size(); ++i) {
    B& b = blocks[i];
    b.d = Fp32ToFp16(i == 1 ? 65504.0f : i == 2 ? 6e-8f : nd(rng));  // the largest fp16 and a subnormal
    b.z = i < std::size(zeros) ? zeros[i] : static_cast<int16_t>(code(rng));
    for (auto& q : b.qs) q = static_cast<uint8_t>(i == 0 ? 0xFF : code(rng) | (kBits == 4 ? code(rng) << 4 : 0));
  }
  const int64_t n = static_cast<int64_t>(blocks.size()) * G;
  std::vector<float> y(n);
  ToFloatFor(t)(blocks.data(), y.data(), n);
  for (size_t i = 0; i < blocks.size(); ++i) {
    for (int e = 0; e < G; ++e) {
      int q;
      if constexpr (kBits == 4) q = (blocks[i].qs[16 * (e / 32) + e % 16] >> (e % 32 < 16 ? 0 : 4)) & 0xF;
      else q = blocks[i].qs[e];
      const float want = static_cast<float>(static_cast<double>(Fp16ToFp32(blocks[i].d)) * (q - blocks[i].z));
      ASSERT_EQ(y[i * G + e], want) << TypeInfo(t).name << " block " << i << " element " << e;
      ASSERT_EQ(GroupedCode(blocks[i], e), q);
    }
  }
}

TEST(GroupedTypes, DequantizationIsExactlyTheFormula) {
  std::mt19937 rng(7);
  CheckDequant<4, 32>(kW4G32, rng);
  CheckDequant<4, 64>(kW4G64, rng);
  CheckDequant<4, 128>(kW4G128, rng);
  CheckDequant<8, 32>(kW8G32, rng);
  CheckDequant<8, 64>(kW8G64, rng);
  CheckDequant<8, 128>(kW8G128, rng);
}

TEST(GroupedLayout, BlocksFollowTheGroupSize) {
  struct Case { int bits; int64_t cols, group; GgmlType type; int64_t stored; };
  const Case cases[] = {
      {4, 4096, 128, kW4G128, 4096}, {4, 4096, 64, kW4G64, 4096},   {4, 4096, 32, kW4G32, 4096},
      {4, 4096, 256, kW4G128, 4096},  // 256: two W4G128 blocks repeat each group's (d, z)
      {4, 4096, 4096, kW4G128, 4096},  // per channel
      {4, 288, 128, kW4G128, 384},     // groups 128, 128, 32: the last padded to 128
      {4, 288, 288, kW4G32, 288},      // per channel on 288 = 9 x 32
      {3, 300, 100, kW4G128, 384},     // groups of 100, each padded to 128
      {2, 96, 96, kW4G32, 96},         {8, 768, 128, kW8G128, 768},
      {6, 200, 64, kW8G64, 256},       // 64, 64, 64, 8 -> 4 blocks of 64
  };
  for (const Case& c : cases) {
    auto l = PlanGrouped(c.bits, c.cols, c.group);
    ASSERT_TRUE(l.ok()) << l.status().message();
    EXPECT_EQ(l->type, c.type) << c.cols << "/" << c.group;
    EXPECT_EQ(l->cols, c.cols);
    EXPECT_EQ(l->stored_cols, c.stored) << c.cols << "/" << c.group;
    EXPECT_EQ(l->padded(), c.stored != c.cols);
    EXPECT_EQ(l->row_bytes(), *RowBytes(c.type, static_cast<uint64_t>(c.stored)));
  }
  // The map of 288 in groups of 128: stored columns 0..287 are the source ones, 288..383 padding.
  auto l = PlanGrouped(4, 288, 128);
  const std::vector<int32_t> map = l->ColumnMap();
  ASSERT_EQ(map.size(), 384u);
  for (int j = 0; j < 384; ++j) EXPECT_EQ(map[j], j < 288 ? j : -1) << j;
  // Groups of 100: each group's 100 columns, then 28 padded.
  l = PlanGrouped(3, 300, 100);
  const std::vector<int32_t> map100 = l->ColumnMap();
  for (int j = 0; j < 384; ++j) EXPECT_EQ(map100[j], j % 128 < 100 ? j / 128 * 100 + j % 128 : -1) << j;
  // A tensor-parallel shard's share of each group (act-order groups cut by the shard): lengths vary.
  const int64_t lens[] = {40, 128, 0, 7};
  auto shard = PlanGrouped(4, lens, 128);
  ASSERT_TRUE(shard.ok());
  EXPECT_EQ(shard->cols, 175);
  EXPECT_EQ(shard->stored_cols, 128 + 128 + 0 + 128);
  EXPECT_EQ(shard->group_start, (std::vector<int64_t>{0, 128, 256, 256}));

  for (auto bad : {PlanGrouped(1, 128, 128), PlanGrouped(9, 128, 128), PlanGrouped(4, 0, 128), PlanGrouped(4, 128, 0)}) {
    EXPECT_FALSE(bad.ok());
  }
  const int64_t too_long[] = {129};
  EXPECT_FALSE(PlanGrouped(4, too_long, 128).ok());
}

// Packs a random layer (codes, fp16 scales, zero points across their range) and reads it back through
// the dequantizer and the column map: every source value fp16(d) * (q - z) exactly where the map puts
// it, and 0 in the padding (z is a code there).
void CheckPackRoundTrip(int bits, int64_t cols, int64_t group, std::mt19937& rng) {
  SCOPED_TRACE(testing::Message() << bits << "-bit, " << cols << " columns, groups of " << group);
  auto l = PlanGrouped(bits, cols, group);
  ASSERT_TRUE(l.ok()) << l.status().message();
  const int64_t rows = 5, ng = l->n_groups();
  std::uniform_int_distribution<int> code(0, (1 << bits) - 1), zero(0, 1 << bits);
  std::normal_distribution<float> nd(0.0f, 0.01f);
  std::vector<uint8_t> codes(rows * cols);
  for (auto& q : codes) q = static_cast<uint8_t>(code(rng));
  std::vector<uint16_t> d(ng * rows);
  std::vector<int32_t> z(ng * rows);
  for (auto& v : d) v = Fp32ToFp16(nd(rng));
  for (auto& v : z) v = zero(rng);
  z[0] = 1 << bits;  // GPTQ v1's largest effective zero
  z[1 % z.size()] = 0;
  std::vector<uint8_t> packed(rows * l->row_bytes());
  ASSERT_TRUE(PackGroupedRows(*l, codes.data(), d.data(), z.data(), rows, packed.data()).ok());
  const std::vector<int32_t> map = l->ColumnMap();
  std::vector<float> row(l->stored_cols);
  for (int64_t r = 0; r < rows; ++r) {
    ToFloatFor(l->type)(packed.data() + r * l->row_bytes(), row.data(), l->stored_cols);
    const int max_code = (1 << GroupedContainerBits(l->type)) - 1;
    for (int64_t j = 0; j < l->stored_cols; ++j) {
      int64_t grp = 0;  // the group whose blocks hold stored column j
      while (grp + 1 < ng && l->group_start[grp + 1] <= j) ++grp;
      const float dg = Fp16ToFp32(d[grp * rows + r]);
      const int32_t zg = z[grp * rows + r];
      if (map[j] < 0) {  // padding: the code nearest z (z itself when it is a code: value 0)
        ASSERT_EQ(row[j], dg * static_cast<float>(std::clamp(zg, 0, max_code) - zg)) << "row " << r << " stored column " << j;
        continue;
      }
      const int64_t c = map[j];
      ASSERT_EQ(c / group, grp);
      ASSERT_EQ(row[j], dg * static_cast<float>(codes[r * cols + c] - zg)) << "row " << r << " stored column " << j;
    }
  }
}

TEST(GroupedLayout, PackedRowsDequantizeToTheLayer) {
  std::mt19937 rng(3);
  CheckPackRoundTrip(4, 512, 128, rng);
  CheckPackRoundTrip(4, 288, 128, rng);
  CheckPackRoundTrip(4, 512, 256, rng);
  CheckPackRoundTrip(4, 288, 288, rng);
  CheckPackRoundTrip(3, 300, 100, rng);
  CheckPackRoundTrip(2, 64, 32, rng);
  CheckPackRoundTrip(8, 320, 64, rng);
  CheckPackRoundTrip(8, 200, 128, rng);
  CheckPackRoundTrip(5, 96, 32, rng);
}

TEST(GroupedLayout, PaddingReadsAsZeroAndBlocksRepeatTheGroup) {
  auto l = PlanGrouped(4, 288, 128);
  const int64_t rows = 1;
  std::vector<uint8_t> codes(288, 3);
  const uint16_t d[] = {Fp32ToFp16(0.5f), Fp32ToFp16(0.25f), Fp32ToFp16(2.0f)};
  const int32_t z[] = {8, 0, 5};
  std::vector<uint8_t> packed(l->row_bytes());
  ASSERT_TRUE(PackGroupedRows(*l, codes.data(), d, z, rows, packed.data()).ok());
  const auto* b = reinterpret_cast<const BlockW4G<128>*>(packed.data());
  EXPECT_EQ(b[2].z, 5);
  EXPECT_EQ(b[2].d, d[2]);
  for (int e = 32; e < 128; ++e) EXPECT_EQ(GroupedCode(b[2], e), 5) << e;  // padding holds z: value 0
  // Per-channel groups of 256 in W4G128: both blocks of a group carry its (d, z).
  auto l256 = PlanGrouped(4, 512, 256);
  ASSERT_EQ(l256->type, kW4G128);
  std::vector<uint8_t> c512(512, 1), p512(l256->row_bytes());
  const uint16_t d2[] = {Fp32ToFp16(1.0f), Fp32ToFp16(3.0f)};
  const int32_t z2[] = {16, 2};
  ASSERT_TRUE(PackGroupedRows(*l256, c512.data(), d2, z2, 1, p512.data()).ok());
  const auto* b2 = reinterpret_cast<const BlockW4G<128>*>(p512.data());
  EXPECT_EQ(b2[0].d, d2[0]);
  EXPECT_EQ(b2[1].d, d2[0]);
  EXPECT_EQ(b2[1].z, 16);
  EXPECT_EQ(b2[2].d, d2[1]);
  EXPECT_EQ(b2[3].z, 2);
}

TEST(GroupedLayout, PackingRejectsCodesAndZerosThatDoNotFit) {
  auto l = PlanGrouped(3, 64, 32);
  std::vector<uint8_t> codes(2 * 64, 7), out(2 * l->row_bytes());
  std::vector<uint16_t> d(4, Fp32ToFp16(1.0f));
  std::vector<int32_t> z(4, 4);
  ASSERT_TRUE(PackGroupedRows(*l, codes.data(), d.data(), z.data(), 2, out.data()).ok());
  codes[64 + 40] = 8;  // row 1, column 40: 8 does not fit 3 bits
  Status s = PackGroupedRows(*l, codes.data(), d.data(), z.data(), 2, out.data());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("row 1 column 40"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("3 bits"), std::string::npos) << s.message();
  codes[64 + 40] = 7;
  z[3] = 40000;  // group 1 of row 1
  s = PackGroupedRows(*l, codes.data(), d.data(), z.data(), 2, out.data());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("row 1 group 1"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("16 bits"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace lowbit

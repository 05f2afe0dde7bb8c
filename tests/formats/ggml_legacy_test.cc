// The legacy GGML reader: header and vocabulary fields, and the block layouts of each version
// against today's blocks (random blocks re-laid out by the test writer, which follows the old layouts).
#include <gtest/gtest.h>

#include <random>

#include "ggml_legacy_writer.h"
#include "lowbit/formats/ggml_legacy.h"
#include "lowbit/numeric/dequant.h"
#include "lowbit/numeric/half.h"

namespace lowbit {
namespace {

// Random blocks of today's layout whose scales are ordinary F16 values.
std::vector<uint8_t> RandomBlocks(GgmlType type, int n, std::mt19937& rng) {
  const size_t bb = TypeInfo(type).block_bytes;
  std::vector<uint8_t> b(bb * n);
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  std::uniform_real_distribution<float> scale(-0.05f, 0.05f);
  for (int i = 0; i < n; ++i) {
    const int n_scales = type == GgmlType::kQ4_1 || type == GgmlType::kQ5_1 ? 2 : 1;
    for (int s = 0; s < n_scales; ++s) {
      const uint16_t h = Fp32ToFp16(scale(rng));
      std::memcpy(b.data() + i * bb + 2 * s, &h, 2);
    }
  }
  return b;
}

TEST(GgmlLegacy, EveryLayoutRepacksToTodaysBlocksBitForBitAndDequantizesAlike) {
  std::mt19937 rng(7);
  for (GgmlType type : {GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_0, GgmlType::kQ5_1, GgmlType::kQ8_0}) {
    for (LegacyBlockLayout layout : {LegacyBlockLayout::kV1, LegacyBlockLayout::kV2, LegacyBlockLayout::kV3}) {
      SCOPED_TRACE(std::string(TypeInfo(type).name) + " layout " + std::to_string(static_cast<int>(layout)));
      const int n = 64;
      const std::vector<uint8_t> today = RandomBlocks(type, n, rng);
      const std::vector<uint8_t> old = testing::ToLegacyBlocks(type, layout, today.data(), n);
      const uint64_t in_b = LegacyBlockBytes(type, layout), out_b = TypeInfo(type).block_bytes;
      ASSERT_EQ(old.size(), in_b * n);
      EXPECT_EQ(LegacyLayoutDiffers(type, layout), old != today);
      for (int b = 0; b < n; ++b) {
        uint8_t got[64];
        ASSERT_TRUE(RepackLegacyBlock(type, layout, old.data() + b * in_b, got));
        ASSERT_EQ(std::memcmp(got, today.data() + b * out_b, out_b), 0) << "block " << b;
        float x[32], y[32];
        DequantizeLegacyBlock(type, layout, old.data() + b * in_b, x);
        DequantizeRow(type, today.data() + b * out_b, y, 32);
        for (int j = 0; j < 32; ++j) ASSERT_EQ(FloatBits(x[j]), FloatBits(y[j])) << "block " << b << " element " << j;
      }
    }
  }
}

TEST(GgmlLegacy, V1PacksElementPairsInABytesNibbles) {
  // Q4_0 v1: F32 d, then element 2i in the low nibble of byte i and 2i + 1 in the high one.
  std::vector<uint8_t> block;
  testing::PutF32(block, 0.5f);
  for (int i = 0; i < 16; ++i) block.push_back(static_cast<uint8_t>(((2 * i) % 16) | (((2 * i + 1) % 16) << 4)));
  float x[32];
  DequantizeLegacyBlock(GgmlType::kQ4_0, LegacyBlockLayout::kV1, block.data(), x);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(x[j], static_cast<float>(j % 16 - 8) * 0.5f) << j;
  // A scale F16 cannot hold is refused, so the caller requantizes.
  const float third = 1.0f / 3.0f;
  std::memcpy(block.data(), &third, 4);
  uint8_t out[18];
  EXPECT_FALSE(RepackLegacyBlock(GgmlType::kQ4_0, LegacyBlockLayout::kV1, block.data(), out));
}

TEST(GgmlLegacy, ParsesHeaderVocabularyAndAlignedTensors) {
  for (auto [format, version] : {std::pair{GgmlLegacyFormat::kGgml, 0u}, {GgmlLegacyFormat::kGgmf, 1u},
                                 {GgmlLegacyFormat::kGgjt, 1u}, {GgmlLegacyFormat::kGgjt, 3u}}) {
    testing::LegacyFileOut f;
    f.format = format;
    f.version = version;
    const uint32_t hp[7] = {3, 32, 4, 2, 1, 16, 1};
    std::copy(hp, hp + 7, f.hp);
    f.tokens = {" \xe2\x81\x87 ", "", "a b"};
    f.scores = {0.0f, 0.0f, -1.5f};
    f.tensors.push_back({"norm.weight", {32}, 0, std::vector<uint8_t>(128, 1)});
    f.tensors.push_back({"tok_embeddings.weight", {32, 3}, 1, std::vector<uint8_t>(192, 2)});
    auto p = GgmlLegacyFile::Parse(testing::LegacyFileBytes(f), "t.bin");
    ASSERT_TRUE(p.ok()) << p.status().message();
    EXPECT_EQ(p->format(), format);
    EXPECT_EQ(p->hparams().n_mult, 4u);
    EXPECT_EQ(p->tokens()[2], "a b");
    EXPECT_EQ(p->has_scores(), format != GgmlLegacyFormat::kGgml);
    if (p->has_scores()) {
      EXPECT_EQ(p->scores()[2], -1.5f);
    }
    ASSERT_EQ(p->tensors().size(), 2u);
    const GgmlLegacyTensor& t = p->tensors()[1];
    EXPECT_EQ(t.type, GgmlType::kF16);
    EXPECT_EQ(t.dims, (std::vector<uint64_t>{32, 3}));
    EXPECT_EQ(t.data.size(), 192u);
    EXPECT_EQ(t.data[0], 2);
    if (format == GgmlLegacyFormat::kGgjt) {
      EXPECT_EQ(t.offset % 32, 0u);
    }
  }
}

TEST(GgmlLegacy, RefusesWhatItCannotRead) {
  auto err = [](std::vector<uint8_t> b) {
    auto p = GgmlLegacyFile::Parse(b, "x.bin");
    return p.ok() ? std::string("accepted") : p.status().message();
  };
  EXPECT_NE(err({'G', 'G', 'U', 'F', 3, 0, 0, 0}).find("already a GGUF"), std::string::npos);
  EXPECT_NE(err({'t', 'j', 'g', 'g', 4, 0, 0, 0}).find("version 4"), std::string::npos);
  EXPECT_NE(err({'x', 'y', 'z', 'w'}).find("magic"), std::string::npos);
  testing::LegacyFileOut f;
  const uint32_t hp[7] = {1, 32, 4, 2, 1, 16, 2};
  std::copy(hp, hp + 7, f.hp);
  f.tokens = {"a"};
  f.scores = {0};
  f.tensors.push_back({"tok_embeddings.weight", {32, 1}, 4, std::vector<uint8_t>(20)});  // Q4_2
  EXPECT_NE(err(testing::LegacyFileBytes(f)).find("Q4_2"), std::string::npos);
  f.tensors.back().type = 12;  // Q4_K
  EXPECT_NE(err(testing::LegacyFileBytes(f)).find("Q4_K"), std::string::npos);
  f.tensors.back() = {"tok_embeddings.weight", {30, 1}, 2, std::vector<uint8_t>(20)};
  EXPECT_NE(err(testing::LegacyFileBytes(f)).find("not whole blocks"), std::string::npos);
}

}  // namespace
}  // namespace lowbit

// AutoAWQ GEMM layers (quant_checkpoint.h): the interleaved nibble order on a hand-made word, round
// trips, and the dequantization formula against AutoAWQ's unpack -> reverse-order -> (q - z) * s.
#include <gtest/gtest.h>

#include <cstring>

#include "quant_test_util.h"

namespace lowbit {
namespace {

using testing::LinearSpec;
using testing::RandomLinear;

QuantConfig Awq(int64_t group_size) {
  QuantConfig c;
  c.method = QuantMethod::kAwq;
  c.format = CheckpointFormat::kAwqGemm;
  c.bits = 4;
  c.group_size = group_size;
  c.sym = false;
  c.desc_act = false;
  return c;
}

std::vector<uint32_t> Words(const SafetensorsFile& f, const std::string& name) {
  const StTensor* t = f.Find(name);
  std::vector<uint32_t> w(t->data.size() / 4);
  std::memcpy(w.data(), t->data.data(), t->data.size());
  return w;
}

TEST(Awq, NibbleOrderOnAHandMadeWord) {
  // 8 outputs, 1 input: output o's code is o. AWQ_ORDER puts output {0,2,4,6,1,3,5,7}[i] in nibble
  // i, so the word reads 0x75316420; the zeros 8 + o/2 likewise.
  IntQuantLinear q;
  q.rows = 8;
  q.cols = 1;
  q.group_size = 1;
  q.codes = {0, 1, 2, 3, 4, 5, 6, 7};
  q.scales.assign(8, 1.0f);
  q.zeros = {8, 8, 9, 9, 10, 10, 11, 11};
  q.g_idx = {0};
  testing::TempDir dir;
  SafetensorsWriter w;
  ASSERT_TRUE(AddAwqLinear(w, "m", q, Awq(1)).ok());
  ASSERT_TRUE(w.Write(dir.Path("a.safetensors")).ok());
  auto f = SafetensorsFile::Open(dir.Path("a.safetensors"));
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(Words(*f, "m.qweight"), std::vector<uint32_t>{0x75316420u});
  EXPECT_EQ(Words(*f, "m.qzeros"), std::vector<uint32_t>{0xBA98BA98u});
  EXPECT_EQ(f->Find("m.qweight")->shape, (std::vector<uint64_t>{1, 1}));
  EXPECT_EQ(f->Find("m.scales")->dtype, StDtype::kF16);
  EXPECT_EQ(f->Find("m.g_idx"), nullptr);
  auto back = ReadAwqLinear(*f, "m", Awq(1), 8, 1);
  ASSERT_TRUE(back.ok()) << back.status().message();
  testing::ExpectSameLinear(q, *back);
}

TEST(Awq, RoundTripsBitExactly) {
  testing::TempDir dir;
  std::mt19937 rng(9);
  for (int64_t group : {int64_t{32}, int64_t{128}, int64_t{-1}}) {
    for (bool bias : {false, true}) {
      LinearSpec s;
      s.rows = 48;
      s.cols = 256;
      s.group_size = group == -1 ? 256 : group;
      s.bias = bias;
      IntQuantLinear q = RandomLinear(rng, s);
      auto back = testing::RoundTrip(q, Awq(group), dir);
      ASSERT_TRUE(back.ok()) << back.status().message();
      testing::ExpectSameLinear(q, *back);
    }
  }
}

TEST(Awq, DequantizationMatchesAutoAwqsUnpack) {
  std::mt19937 rng(10);
  LinearSpec s;
  s.rows = 16;
  s.cols = 64;
  s.group_size = 32;
  IntQuantLinear q = RandomLinear(rng, s);
  testing::TempDir dir;
  auto back = testing::RoundTrip(q, Awq(32), dir);
  ASSERT_TRUE(back.ok());
  auto f = SafetensorsFile::Open(dir.Path("rt.safetensors"));
  const auto qw = Words(*f, "m.qweight");
  const auto qz = Words(*f, "m.qzeros");
  const StTensor* scales = f->Find("m.scales");
  // AutoAWQ's dequantize_gemm: shift by 0,4,..,28 -> columns 8c+i, then column 8c+j takes nibble
  // AWQ_REVERSE_ORDER[j] = {0, 4, 1, 5, 2, 6, 3, 7}[j].
  constexpr int kReverse[8] = {0, 4, 1, 5, 2, 6, 3, 7};
  for (int64_t i = 0; i < s.cols; ++i) {
    for (int64_t o = 0; o < s.rows; ++o) {
      const int nib = kReverse[o % 8];
      const int code = (qw[i * (s.rows / 8) + o / 8] >> (4 * nib)) & 15;
      const int64_t g = i / s.group_size;
      const int zero = (qz[g * (s.rows / 8) + o / 8] >> (4 * nib)) & 15;
      uint16_t h;
      std::memcpy(&h, scales->data.data() + 2 * (g * s.rows + o), 2);
      ASSERT_EQ(back->value(o, i), static_cast<float>(code - zero) * Fp16ToFp32(h)) << o << " " << i;
    }
  }
}

}  // namespace
}  // namespace lowbit

// bitsandbytes' quantizers (quant/bnb_quant.h) on hand-worked inputs: blockwise NF4 / FP4 codes and
// their nibble order, the odd tail and the all-zero block as bitsandbytes' kernels write them, double
// quantization of the absmax values, LLM.int8 row quantization.
#include "lowbit/quant/bnb_quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace lowbit {
namespace {

TEST(QuantizeBnb4, HandWorkedNf4BlockHighNibbleFirst) {
  // absmax 1: 1 -> 15, -1 -> 0, 0.5 -> 12 (0.4407 is closer than 0.5626), -0.5 -> 2 (-0.5251),
  // 0 -> 7, 0.1 -> 8 (0.0796; midpoint 0.1203), 0.7 -> 14, -0.05 -> 6 (-0.0911; midpoint -0.0455).
  std::vector<float> x = {1.0f, -1.0f, 0.5f, -0.5f, 0.0f, 0.1f, 0.7f, -0.05f};
  x.resize(64, 0.0f);
  std::vector<uint8_t> packed(32);
  float absmax = 0;
  QuantizeBnb4(Bnb4Type::kNf4, x.data(), 64, 64, packed.data(), &absmax);
  EXPECT_EQ(absmax, 1.0f);
  EXPECT_EQ(packed[0], 0xF0);
  EXPECT_EQ(packed[1], 0xC2);
  EXPECT_EQ(packed[2], 0x78);
  EXPECT_EQ(packed[3], 0xE6);
  for (int i = 4; i < 32; ++i) EXPECT_EQ(packed[i], 0x77);
}

TEST(QuantizeBnb4, HandWorkedFp4Block) {
  // absmax 4: x / 4 = 1 -> 0b0011, -0.5 -> 0b1101, 0.25 -> 0b0111, 0.001 -> 0, -0.17 -> 0b1110 (1/6).
  const float x[6] = {4.0f, -2.0f, 1.0f, 0.004f, -0.68f, 0.0f};
  std::vector<uint8_t> packed(3);
  float absmax = 0;
  QuantizeBnb4(Bnb4Type::kFp4, x, 6, 64, packed.data(), &absmax);
  EXPECT_EQ(absmax, 4.0f);
  EXPECT_EQ(packed[0], 0x3D);
  EXPECT_EQ(packed[1], 0x70);
  EXPECT_EQ(packed[2], 0xE0);
}

TEST(QuantizeBnb4, OddTailGetsTheCodeOfZeroAndZeroBlocksCodeZero) {
  const float x[3] = {0.0f, 0.0f, 2.0f};
  std::vector<uint8_t> packed(2);
  float absmax[2];
  // Two blocks of 2: the first all zero (1 / 0 = inf, 0 * inf = NaN -> code 0), the second [2, pad].
  QuantizeBnb4(Bnb4Type::kNf4, x, 3, 2, packed.data(), absmax);
  EXPECT_EQ(absmax[0], 0.0f);
  EXPECT_EQ(absmax[1], 2.0f);
  EXPECT_EQ(packed[0], 0x00);
  EXPECT_EQ(packed[1], 0xF7);  // 1.0 -> 15, the padding 0.0 -> 7
  float back[3];
  DequantizeBnb4(Bnb4Type::kNf4, packed.data(), absmax, 3, 2, back);
  EXPECT_EQ(back[0], 0.0f);  // -1 * 0
  EXPECT_EQ(back[2], 2.0f);
}

TEST(QuantizeBnb4, RoundTripErrorIsWithinHalfTheLargestGap) {
  std::mt19937 rng(4);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  for (Bnb4Type t : {Bnb4Type::kNf4, Bnb4Type::kFp4}) {
    for (int64_t bs : {32, 64, 256, 4096}) {
      const int64_t n = 8192 + 62;  // a partial last block
      std::vector<float> x(n), y(n);
      for (auto& v : x) v = nd(rng);
      std::vector<uint8_t> packed((n + 1) / 2);
      std::vector<float> absmax(BnbBlockCount(n, bs));
      QuantizeBnb4(t, x.data(), n, bs, packed.data(), absmax.data());
      DequantizeBnb4(t, packed.data(), absmax, n, bs, y.data());
      const float gap = t == Bnb4Type::kNf4 ? 0.3039f : 0.3334f;  // NF4's widest gap (1 - 0.723), FP4's (1/3)
      for (int64_t i = 0; i < n; ++i) ASSERT_LE(std::fabs(x[i] - y[i]), absmax[i / bs] * gap / 2 * 1.0001f) << i;
    }
  }
}

TEST(DoubleQuantize, HandWorkedAndDecodesAsBitsandbytes) {
  // absmax [1, 3]: offset 2, centered [-1, 1], nested absmax 1, codes 0 (-0.99296875) and 255 (1.0).
  const std::vector<float> absmax = {1.0f, 3.0f};
  const BnbNestedAbsmax dq = DoubleQuantizeAbsmax(absmax);
  EXPECT_EQ(dq.offset, 2.0f);
  ASSERT_EQ(dq.q.size(), 2u);
  EXPECT_EQ(dq.q[0], 0);
  EXPECT_EQ(dq.q[1], 255);
  ASSERT_EQ(dq.nested_absmax.size(), 1u);
  EXPECT_EQ(dq.nested_absmax[0], 1.0f);
  std::vector<float> back(2);
  DecodeNestedAbsmax(dq.q, dq.nested_absmax, dq.offset, back);
  EXPECT_EQ(back[0], -0.99296875f + 2.0f);
  EXPECT_EQ(back[1], 3.0f);
}

TEST(DoubleQuantize, BlocksOf256AndSmallRelativeError) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(0.01f, 0.2f);
  std::vector<float> absmax(600);
  for (auto& a : absmax) a = u(rng);
  const BnbNestedAbsmax dq = DoubleQuantizeAbsmax(absmax);
  EXPECT_EQ(dq.nested_absmax.size(), 3u);  // 256 + 256 + 88
  double sum = 0;
  for (float a : absmax) sum += a;
  EXPECT_EQ(dq.offset, static_cast<float>(sum / 600));
  std::vector<float> back(600);
  DecodeNestedAbsmax(dq.q, dq.nested_absmax, dq.offset, back);
  const std::array<float, 256>& code = BnbDynamicMap();
  for (size_t i = 0; i < absmax.size(); ++i) {
    // Each code is the nearest of the map to (absmax - offset) / nested; the decoded value is exactly
    // code * nested + offset in float.
    const float nested = dq.nested_absmax[i / 256];
    const float want = code[dq.q[i]] * nested + dq.offset;
    EXPECT_EQ(back[i], want);
    EXPECT_LT(std::fabs(back[i] - absmax[i]), 0.01f * nested + 1e-7f) << i;
  }
}

TEST(QuantizeInt8Rows, HandWorkedRowsRoundHalfToEven) {
  const float w[6] = {1.0f, -2.0f, 0.5f, 0.0f, 0.0f, 0.0f};
  int8_t q[6];
  const std::vector<float> scb = QuantizeInt8Rows(w, 2, 3, q);
  EXPECT_EQ(scb[0], 2.0f);
  EXPECT_EQ(scb[1], 0.0f);
  EXPECT_EQ(q[0], 64);  // 63.5 -> 64 (even)
  EXPECT_EQ(q[1], -127);
  EXPECT_EQ(q[2], 32);  // 31.75
  EXPECT_EQ(q[3], 0);
  float back[6];
  DequantizeInt8Rows(q, scb, 2, 3, back);
  EXPECT_EQ(back[1], -127.0f * 2.0f * 7.874015718698502e-3f);
  EXPECT_EQ(back[4], 0.0f);
}

}  // namespace
}  // namespace lowbit

namespace lowbit {
namespace {

// The scale search never does worse than absmax (absmax is its first candidate), weighted or not, and
// its output is an ordinary bitsandbytes tensor: level[q] * stored scale.
TEST(QuantizeBnb4Searched, NeverWorseThanAbsmaxAndDecodesAsBitsandbytes) {
  std::mt19937 rng(6);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::uniform_real_distribution<float> uw(0.1f, 10.0f);
  const int64_t rows = 16, cols = 256, n = rows * cols;
  std::vector<float> x(n), cw(cols), y(n), z(n);
  for (auto& v : x) v = nd(rng);
  for (auto& v : cw) v = uw(rng);
  for (Bnb4Type t : {Bnb4Type::kNf4, Bnb4Type::kFp4}) {
    for (const float* w : {static_cast<const float*>(nullptr), static_cast<const float*>(cw.data())}) {
      std::vector<uint8_t> p0(n / 2), p1(n / 2);
      std::vector<float> a0(n / 64), a1(n / 64);
      QuantizeBnb4(t, x.data(), n, 64, p0.data(), a0.data());
      QuantizeBnb4Searched(t, x.data(), n, 64, w, cols, p1.data(), a1.data());
      DequantizeBnb4(t, p0.data(), a0, n, 64, y.data());
      DequantizeBnb4(t, p1.data(), a1, n, 64, z.data());
      double e0 = 0, e1 = 0;
      for (int64_t i = 0; i < n; ++i) {
        const double wi = w != nullptr ? w[i % cols] : 1.0;
        e0 += wi * (x[i] - y[i]) * (x[i] - y[i]);
        e1 += wi * (x[i] - z[i]) * (x[i] - z[i]);
      }
      EXPECT_LE(e1, e0);
      EXPECT_LT(e1, 0.97 * e0) << Bnb4TypeName(t);  // measured 10-15% lower on normal weights
    }
  }
}

}  // namespace
}  // namespace lowbit

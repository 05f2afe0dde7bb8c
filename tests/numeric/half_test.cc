// fp16 / bf16 conversions: exhaustive over all 65,536 16-bit patterns against an independent
// reference (exact arithmetic in double), every rounding boundary, and every ISA's array kernels.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "lowbit/base/cpu_features.h"
#include "lowbit/numeric/convert.h"
#include "lowbit/numeric/half.h"

namespace lowbit {
namespace {

// Value of a half as a double, from the IEEE 754 binary16 definition.
double HalfValue(uint16_t h) {
  const int sign = h >> 15, exp = (h >> 10) & 31, mant = h & 1023;
  double v;
  if (exp == 31) v = mant ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  else if (exp == 0) v = std::ldexp(mant, -24);
  else v = std::ldexp(1024 + mant, exp - 25);
  return sign ? -v : v;
}

bool IsHalfNan(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0; }

TEST(Fp16, ToFp32ExhaustiveAgainstDefinition) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = Fp16ToFp32(static_cast<uint16_t>(h));
    if (IsHalfNan(static_cast<uint16_t>(h))) {
      ASSERT_TRUE(std::isnan(f)) << h;
      ASSERT_EQ(std::signbit(f), (h >> 15) != 0) << h;
      ASSERT_EQ((FloatBits(f) >> 13) & 0x3ff, (h & 0x3ff) | 0x200) << "payload kept, quieted: " << h;
    } else {
      ASSERT_EQ(static_cast<double>(f), HalfValue(static_cast<uint16_t>(h))) << h;
      ASSERT_EQ(std::signbit(f), (h >> 15) != 0) << h;
    }
  }
}

TEST(Fp16, RoundTripExhaustive) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const auto hh = static_cast<uint16_t>(h);
    const uint16_t back = Fp32ToFp16(Fp16ToFp32(hh));
    if (IsHalfNan(hh)) ASSERT_EQ(back, hh | 0x200) << h;  // quieted
    else ASSERT_EQ(back, hh) << h;
  }
}

// Every boundary between two neighbouring halves: the midpoint ties to even, one ulp (of float)
// below goes down, one ulp above goes up. Covers subnormals, normals and the overflow threshold.
TEST(Fp16, FromFp32RoundsToNearestEvenAtEveryMidpoint) {
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    const double lo = HalfValue(static_cast<uint16_t>(h));
    const double hi = h == 0x7bff ? 65536.0 : HalfValue(static_cast<uint16_t>(h + 1));
    const auto mid = static_cast<float>((lo + hi) / 2);
    ASSERT_EQ(static_cast<double>(mid), (lo + hi) / 2) << "midpoint exact in float";
    const uint16_t up = static_cast<uint16_t>(h + 1);  // 0x7c00 = infinity above 65504
    const uint16_t even = (h & 1) ? up : static_cast<uint16_t>(h);
    for (int s = 0; s < 2; ++s) {
      const float sign = s ? -1.0f : 1.0f;
      const uint16_t sb = s ? 0x8000 : 0;
      ASSERT_EQ(Fp32ToFp16(sign * mid), even | sb) << "tie at " << h;
      ASSERT_EQ(Fp32ToFp16(sign * std::nextafter(mid, 0.0f)), h | sb) << "below " << h;
      ASSERT_EQ(Fp32ToFp16(sign * std::nextafter(mid, 1e30f)), up | sb) << "above " << h;
    }
  }
}

TEST(Fp16, FromFp32SpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(Fp32ToFp16(inf), 0x7c00);
  EXPECT_EQ(Fp32ToFp16(-inf), 0xfc00);
  EXPECT_EQ(Fp32ToFp16(1e10f), 0x7c00);
  EXPECT_EQ(Fp32ToFp16(65504.0f), 0x7bff);
  EXPECT_EQ(Fp32ToFp16(-0.0f), 0x8000);
  EXPECT_EQ(Fp32ToFp16(1e-10f), 0x0000);
  EXPECT_EQ(Fp32ToFp16(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(Fp32ToFp16(BitsFloat(0x7f800001)), 0x7e00);  // signalling NaN -> quiet NaN
  EXPECT_EQ(Fp32ToFp16(BitsFloat(0xffc00000)), 0xfe00);
}

// Random floats: the result is a nearest half (ties to even), by exact comparison in double.
TEST(Fp16, FromFp32RandomIsNearest) {
  std::mt19937 rng(42);
  std::uniform_int_distribution<uint32_t> bits(0, 0xffffffffu);
  for (int i = 0; i < 1000000; ++i) {
    const float x = BitsFloat(bits(rng));
    const uint16_t h = Fp32ToFp16(x);
    if (std::isnan(x)) {
      ASSERT_TRUE(IsHalfNan(h));
      continue;
    }
    const double ax = std::fabs(static_cast<double>(x));
    const uint16_t mag = h & 0x7fff;
    ASSERT_EQ((h >> 15) != 0, std::signbit(x));
    if (ax >= 65520.0) {
      ASSERT_EQ(mag, 0x7c00) << x;
      continue;
    }
    const double err = std::fabs(ax - HalfValue(mag));
    if (mag > 0) {
      ASSERT_LE(err, std::fabs(ax - HalfValue(mag - 1))) << x;
    }
    if (mag < 0x7bff) {
      ASSERT_LE(err, std::fabs(ax - HalfValue(mag + 1))) << x;
    }
  }
}

TEST(Bf16, ExhaustiveRoundingAtEveryBoundary) {
  for (uint32_t b = 0; b < 65536; ++b) {
    ASSERT_EQ(FloatBits(Bf16ToFp32(static_cast<uint16_t>(b))), b << 16);
    const bool nan = (b & 0x7f80) == 0x7f80 && (b & 0x7f) != 0;
    const bool inf = (b & 0x7fff) == 0x7f80;
    for (uint32_t low : {0u, 1u, 0x7fffu, 0x8000u, 0x8001u, 0xffffu}) {
      const uint32_t x = (b << 16) | low;
      const uint16_t got = Fp32ToBf16(BitsFloat(x));
      if (nan || (inf && low != 0)) {  // NaN in, NaN out (quiet, sign kept)
        ASSERT_EQ(got, static_cast<uint16_t>(b | 0x40)) << x;
        continue;
      }
      if (inf) {
        ASSERT_EQ(got, b);
        continue;
      }
      // Round to nearest, ties to even; carrying into the exponent is correct (up to infinity).
      uint32_t want = b;
      if (low > 0x8000 || (low == 0x8000 && (b & 1))) want = b + 1;
      ASSERT_EQ(got, static_cast<uint16_t>(want)) << std::hex << x;
    }
  }
}

TEST(Fp8, DecodesE4M3AndE5M2) {
  EXPECT_EQ(Fp8E4M3ToFp32(0x38), 1.0f);   // 0.0111.000
  EXPECT_EQ(Fp8E4M3ToFp32(0x7e), 448.0f);  // max finite
  EXPECT_TRUE(std::isnan(Fp8E4M3ToFp32(0x7f)));
  EXPECT_EQ(Fp8E4M3ToFp32(0x01), 1.0f / 512);  // smallest subnormal
  EXPECT_EQ(Fp8E4M3ToFp32(0xb8), -1.0f);
  EXPECT_EQ(Fp8E5M2ToFp32(0x3c), 1.0f);
  EXPECT_EQ(Fp8E5M2ToFp32(0x7b), 57344.0f);
  EXPECT_TRUE(std::isinf(Fp8E5M2ToFp32(0x7c)));
}

// Inputs for the array kernels: every half pattern's value, midpoints, random bits, specials.
std::vector<float> KernelInputs() {
  std::vector<float> v;
  for (uint32_t h = 0; h < 65536; ++h) v.push_back(Fp16ToFp32(static_cast<uint16_t>(h)));
  for (uint32_t h = 0; h < 0x7bff; h += 7) {
    const float mid = static_cast<float>((HalfValue(static_cast<uint16_t>(h)) + HalfValue(static_cast<uint16_t>(h + 1))) / 2);
    v.push_back(mid);
    v.push_back(-std::nextafter(mid, 1e30f));
  }
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> bits(0, 0xffffffffu);
  for (int i = 0; i < 200000; ++i) v.push_back(BitsFloat(bits(rng)));
  for (uint32_t b : {0x7f800001u, 0xff800001u, 0x7fc00000u, 0x00000001u, 0x80000001u, 0x7f7fffffu, 0x477ff000u}) {
    v.push_back(BitsFloat(b));
  }
  return v;
}

class HalfKernels : public ::testing::TestWithParam<Isa> {};

TEST_P(HalfKernels, MatchScalarBitForBit) {
  const HalfConvertKernels& k = HalfConvertKernelsFor(GetParam());
  const std::vector<float> in = KernelInputs();
  std::vector<uint16_t> h(in.size()), want_h(in.size());
  k.f32_to_f16(in.data(), h.data(), in.size());
  for (size_t i = 0; i < in.size(); ++i) want_h[i] = Fp32ToFp16(in[i]);
  for (size_t i = 0; i < in.size(); ++i) ASSERT_EQ(h[i], want_h[i]) << "f32->f16 i=" << i << " x=" << in[i];
  k.f32_to_bf16(in.data(), h.data(), in.size());
  for (size_t i = 0; i < in.size(); ++i) ASSERT_EQ(h[i], Fp32ToBf16(in[i])) << "f32->bf16 i=" << i;

  std::vector<uint16_t> all(65536);
  for (uint32_t i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> out(all.size());
  k.f16_to_f32(all.data(), out.data(), all.size());
  for (uint32_t i = 0; i < 65536; ++i) {
    ASSERT_EQ(FloatBits(out[i]), FloatBits(Fp16ToFp32(all[i]))) << "f16->f32 " << i;
  }
  k.bf16_to_f32(all.data(), out.data(), all.size());
  for (uint32_t i = 0; i < 65536; ++i) ASSERT_EQ(FloatBits(out[i]), i << 16);

  // Every tail length, and nothing written past the end.
  for (size_t n = 0; n <= 40; ++n) {
    std::vector<uint16_t> dst(n + 1, 0xabcd);
    k.f32_to_f16(in.data() + 3, dst.data(), n);
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(dst[i], want_h[i + 3]);
    ASSERT_EQ(dst[n], 0xabcd);
    std::vector<float> fdst(n + 1, -7.0f);
    k.f16_to_f32(all.data() + 1000, fdst.data(), n);
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(fdst[i], Fp16ToFp32(all[1000 + i]));
    ASSERT_EQ(fdst[n], -7.0f);
    k.bf16_to_f32(all.data() + 1000, fdst.data(), n);
    ASSERT_EQ(fdst[n], -7.0f);
    k.f32_to_bf16(in.data(), dst.data(), n);
    ASSERT_EQ(dst[n], 0xabcd);
  }
}

INSTANTIATE_TEST_SUITE_P(EveryIsaThisCpuRuns, HalfKernels, ::testing::ValuesIn(SupportedIsas()),
                         [](const auto& p) { return std::string(IsaName(p.param)); });

}  // namespace
}  // namespace lowbit

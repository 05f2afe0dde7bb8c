// The linear quantizer family (quant/linear_quant.h) on data whose right answer is known: grids
// reproduced exactly, AutoGPTQ's and AutoAWQ's formulas on hand-worked groups, saturating ranges
// that beat min/max on heavy tails, clipped values that saturate, percentiles, KL and log2 codes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "lowbit/numeric/half.h"
#include "lowbit/quant/linear_quant.h"
#include "lowbit/quant/linear_range.h"

namespace lowbit {
namespace {

LinearQuantSpec Spec(int bits, bool sym, QuantConvention conv, int64_t group = 128) {
  LinearQuantSpec s;
  s.bits = bits;
  s.sym = sym;
  s.convention = conv;
  s.group_size = group;
  return s;
}

double SqErr(const std::vector<float>& a, const std::vector<float>& b) {
  double e = 0;
  for (size_t i = 0; i < a.size(); ++i) e += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
  return e;
}

// Values on a grid s * (k - z), every code present in every group, come back exactly, with that s and z.
TEST(LinearQuant, AsymmetricGridReproducedExactly) {
  for (QuantConvention conv : {QuantConvention::kGptq, QuantConvention::kAwq}) {
    for (int bits = 2; bits <= 8; ++bits) {
      const int levels = 1 << bits, z = levels / 3;
      const float s = 1.0f / 32;
      const int64_t rows = 3, cols = 2 * levels;
      std::vector<float> w(static_cast<size_t>(rows * cols));
      std::mt19937 rng(bits);
      for (int64_t r = 0; r < rows; ++r) {
        for (int g = 0; g < 2; ++g) {
          std::vector<int> k(static_cast<size_t>(levels));
          std::iota(k.begin(), k.end(), 0);
          std::shuffle(k.begin(), k.end(), rng);
          for (int i = 0; i < levels; ++i) w[static_cast<size_t>(r * cols + g * levels + i)] = s * static_cast<float>(k[static_cast<size_t>(i)] - z);
        }
      }
      auto q = QuantizeLinear(w.data(), rows, cols, Spec(bits, false, conv, levels));
      ASSERT_TRUE(q.ok()) << q.status().message();
      EXPECT_EQ(q->Dequantize(), w) << "bits " << bits;
      for (float sc : q->scales) EXPECT_EQ(sc, s);
      for (int32_t zz : q->zeros) EXPECT_EQ(zz, z);
    }
  }
}

// AWQ's symmetric grid k * s, |k| <= 2^(bits-1) - 1, with the zero fixed at 2^(bits-1).
TEST(LinearQuant, AwqSymmetricGridReproducedExactly) {
  for (int bits = 2; bits <= 8; ++bits) {
    const int half = (1 << (bits - 1)) - 1;
    const float s = 1.0f / 64;
    std::vector<float> w;
    for (int k = -half; k <= half; ++k) w.push_back(s * static_cast<float>(k));
    const int64_t n = static_cast<int64_t>(w.size());
    auto q = QuantizeLinear(w.data(), 1, n, Spec(bits, true, QuantConvention::kAwq, n));
    ASSERT_TRUE(q.ok());
    EXPECT_EQ(q->Dequantize(), w);
    EXPECT_EQ(q->scales[0], s);
    EXPECT_EQ(q->zeros[0], 1 << (bits - 1));
  }
}

// AutoGPTQ quantizer.py, worked by hand (scales not rounded, to compare with its fp32 values).
TEST(LinearQuant, GptqConventionByHand) {
  LinearQuantSpec spec = Spec(4, true, QuantConvention::kGptq, 4);
  spec.scale_rounding = ScaleRounding::kNone;
  // sym: range [-1, 1] -> scale 2/15, zero 8. In fp32 2/15 rounds up (0.13333334f), so -1/scale is
  // -7.4999995f and rounds to -7 (torch computes the same in fp32): code 1.
  const float a[4] = {-1.0f, 0.5f, 0.25f, 0.0f};
  GroupParams p = FindGroupParams(a, 4, spec);
  EXPECT_EQ(p.scale, 2.0f / 15.0f);
  EXPECT_EQ(p.zero, 8);
  EXPECT_EQ(-1.0f / (2.0f / 15.0f), -7.4999995f);
  EXPECT_EQ(QuantizeCode(a[0], p, 15), 1);
  EXPECT_EQ(QuantizeCode(a[1], p, 15), 12);
  EXPECT_EQ(QuantizeCode(a[2], p, 15), 10);
  EXPECT_EQ(QuantizeCode(a[3], p, 15), 8);
  const float half[2] = {-0.75f, 0.75f};  // scale 0.1 (1.5f / 15), -0.75 / 0.1f = -7.5 exactly: ties to even, -8
  p = FindGroupParams(half, 2, spec);
  EXPECT_EQ(-0.75f / p.scale, -7.5f);
  EXPECT_EQ(QuantizeCode(-0.75f, p, 15), 0);
  // sym with no negative value keeps xmin = 0: scale = max / 15 (AutoGPTQ's behaviour), so the top
  // saturates at 7 steps above the zero.
  const float b[2] = {0.5f, 1.0f};
  p = FindGroupParams(b, 2, spec);
  EXPECT_EQ(p.scale, 1.0f / 15.0f);
  EXPECT_EQ(QuantizeCode(1.0f, p, 15), 15);
  // all zero -> range [-1, 1]; asym zero = round(1 / 0.13333334f) = round(7.4999995f) = 7.
  const float c[3] = {0, 0, 0};
  spec.sym = false;
  p = FindGroupParams(c, 3, spec);
  EXPECT_EQ(p.scale, 2.0f / 15.0f);
  EXPECT_EQ(p.zero, 7);
  // asym: range always contains 0: [0.5, 2] -> [0, 2], zero 0.
  const float d[2] = {0.5f, 2.0f};
  p = FindGroupParams(d, 2, spec);
  EXPECT_EQ(p.scale, 2.0f / 15.0f);
  EXPECT_EQ(p.zero, 0);
  // asym: [-0.3, 1.2]: scale 1.5/15, zero round(0.3 / 0.1) = 3.
  const float e[2] = {-0.3f, 1.2f};
  p = FindGroupParams(e, 2, spec);
  EXPECT_EQ(p.scale, (1.2f - -0.3f) / 15.0f);
  EXPECT_EQ(p.zero, static_cast<int>(std::nearbyint(0.3f / ((1.2f - -0.3f) / 15.0f))));
}

// AutoAWQ pseudo_quantize_tensor, by hand: no zero in the range, 1e-5 floor, zero clamped.
TEST(LinearQuant, AwqConventionByHand) {
  LinearQuantSpec spec = Spec(4, false, QuantConvention::kAwq, 2);
  spec.scale_rounding = ScaleRounding::kNone;
  const float a[2] = {1.0f, 2.5f};  // scale 1.5/15 = 0.1, zero = -round(10) clamped to 0
  GroupParams p = FindGroupParams(a, 2, spec);
  EXPECT_EQ(p.scale, 1.5f / 15.0f);
  EXPECT_EQ(p.zero, 0);
  const float b[2] = {0.25f, 0.25f};  // range 0 -> 1e-5 / 15
  p = FindGroupParams(b, 2, spec);
  EXPECT_EQ(p.scale, 1e-5f / 15.0f);
  spec.sym = true;  // sym: max|x| / 7, zero 8
  const float c[2] = {-0.7f, 0.35f};
  p = FindGroupParams(c, 2, spec);
  EXPECT_EQ(p.scale, 0.7f / 7.0f);
  EXPECT_EQ(p.zero, 8);
  EXPECT_EQ(QuantizeCode(-0.7f, p, 15), 1);  // -7 + 8
}

// The fp16-rounded scale is what the codes are computed against.
TEST(LinearQuant, CodesUseTheRoundedScale) {
  LinearQuantSpec spec = Spec(4, false, QuantConvention::kGptq, 64);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0, 0.02f);
  std::vector<float> w(64);
  for (float& x : w) x = nd(rng);
  auto q = QuantizeLinear(w.data(), 1, 64, spec);
  ASSERT_TRUE(q.ok());
  const float s = q->scales[0];
  EXPECT_EQ(Fp16ToFp32(Fp32ToFp16(s)), s);
  for (int i = 0; i < 64; ++i) EXPECT_EQ(q->codes[static_cast<size_t>(i)], QuantizeCode(w[static_cast<size_t>(i)], {s, q->zeros[0]}, 15));
}

// GPTQ's group 128 on a 288-wide row: groups of 128, 128 and 32, each from its own values.
TEST(LinearQuant, PartialLastGroup) {
  const int64_t rows = 2, cols = 288;
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows * cols; ++i) w[static_cast<size_t>(i)] = (i % cols) >= 256 ? 8.0f * ((i % 7) - 3) : 0.01f * ((i % 5) - 2);
  auto q = QuantizeLinear(w.data(), rows, cols, Spec(4, false, QuantConvention::kGptq, 128));
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->n_groups(), 3);
  EXPECT_EQ(q->g_idx[255], 1);
  EXPECT_EQ(q->g_idx[256], 2);
  EXPECT_EQ(q->g_idx[287], 2);
  EXPECT_GT(q->scales[2 * rows], 1.0f);  // the last group's scale comes from its large values only
  EXPECT_LT(q->scales[0], 0.01f);
  // AWQ needs whole groups.
  EXPECT_FALSE(QuantizeLinear(w.data(), rows, cols, Spec(4, false, QuantConvention::kAwq, 128)).ok());
}

TEST(LinearQuant, RejectsBadSpecs) {
  std::vector<float> w(64, 1.0f);
  EXPECT_FALSE(QuantizeLinear(w.data(), 1, 64, Spec(1, false, QuantConvention::kGptq)).ok());
  EXPECT_FALSE(QuantizeLinear(w.data(), 1, 64, Spec(9, false, QuantConvention::kGptq)).ok());
  EXPECT_FALSE(QuantizeLinear(w.data(), 1, 64, Spec(4, false, QuantConvention::kGptq, 0)).ok());
  w[3] = std::nanf("");
  const auto bad = QuantizeLinear(w.data(), 1, 64, Spec(4, false, QuantConvention::kGptq));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("[0, 3]"), std::string::npos) << bad.status().message();
}

// Student-t (3 degrees of freedom) rows: a few large values stretch a min/max range.
std::vector<float> HeavyTailed(int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd(0, 1);
  std::chi_squared_distribution<double> chi(3);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = static_cast<float>(0.02 * nd(rng) / std::sqrt(chi(rng) / 3));
  return v;
}

TEST(LinearQuant, SaturatingRangesBeatMinMaxOnHeavyTails) {
  const int64_t rows = 4, cols = 4096;
  const std::vector<float> w = HeavyTailed(rows * cols, 7);
  for (int bits : {3, 4}) {
    LinearQuantSpec spec = Spec(bits, false, QuantConvention::kGptq);
    spec.granularity = QuantGranularity::kPerChannel;
    const double minmax = SqErr(QuantizeLinear(w.data(), rows, cols, spec)->Dequantize(), w);
    spec.range = QuantRange::kMse;
    const double mse = SqErr(QuantizeLinear(w.data(), rows, cols, spec)->Dequantize(), w);
    spec.range = QuantRange::kPercentile;
    spec.percentile = 99.9;
    const double pct = SqErr(QuantizeLinear(w.data(), rows, cols, spec)->Dequantize(), w);
    spec.range = QuantRange::kKl;
    const double kl = SqErr(QuantizeLinear(w.data(), rows, cols, spec)->Dequantize(), w);
    EXPECT_LT(mse, 0.6 * minmax) << bits;
    EXPECT_LT(pct, 0.8 * minmax) << bits;
    EXPECT_LT(kl, 0.8 * minmax) << bits;
  }
}

// The MSE search keeps the best of AutoGPTQ's candidates p = 1 - k/100, k < 80 (norm 2.4).
TEST(LinearQuant, MseSearchIsTheBestCandidate) {
  const std::vector<float> x = HeavyTailed(256, 9);
  LinearQuantSpec spec = Spec(4, false, QuantConvention::kGptq, 256);
  spec.range = QuantRange::kMse;
  const GroupParams best = FindGroupParams(x.data(), 256, spec);
  auto err = [&](GroupParams p) {
    double e = 0;
    for (float v : x) e += std::pow(std::fabs(CodeValue(QuantizeCode(v, p, 15), p) - v), 2.4);
    return e;
  };
  float lo = std::min(0.0f, *std::min_element(x.begin(), x.end())), hi = std::max(0.0f, *std::max_element(x.begin(), x.end()));
  const double e_best = err(best);
  for (int k = 0; k < 80; ++k) {
    const float p = static_cast<float>(1.0 - k / 100.0);
    const float s = (p * hi - p * lo) / 15.0f;
    const GroupParams c{RoundScale(s, ScaleRounding::kF16), static_cast<int32_t>(std::nearbyint(-(p * lo) / s))};
    EXPECT_LE(e_best, err(c) * (1 + 1e-9)) << k;
  }
  EXPECT_LT(best.scale, (hi - lo) / 15.0f);  // these tails are worth clipping
}

// Values outside a saturating range get the extreme codes.
TEST(LinearQuant, ClippedValuesSaturate) {
  std::vector<float> w(1000);
  for (int i = 0; i < 1000; ++i) w[static_cast<size_t>(i)] = static_cast<float>(i - 500) / 500.0f;
  w[10] = 40.0f;
  w[20] = -40.0f;
  LinearQuantSpec spec = Spec(4, false, QuantConvention::kGptq);
  spec.granularity = QuantGranularity::kPerChannel;
  spec.range = QuantRange::kPercentile;
  spec.percentile = 99.0;
  auto q = QuantizeLinear(w.data(), 1, 1000, spec);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->codes[10], 15);
  EXPECT_EQ(q->codes[20], 0);
  EXPECT_LT(q->Value(0, 10), 1.1f);
  EXPECT_GT(q->Value(0, 20), -1.1f);
}

TEST(LinearQuant, PercentileIsNumpysLinearPercentile) {
  std::vector<float> v(1000);
  std::iota(v.begin(), v.end(), 1.0f);
  std::shuffle(v.begin(), v.end(), std::mt19937(1));
  EXPECT_FLOAT_EQ(AbsPercentile(v.data(), 1000, 99.0), 990.01f);  // rank 989.01 between 990 and 991
  float lo, hi;
  PercentileRange(v.data(), 1000, 90.0, &lo, &hi);
  EXPECT_FLOAT_EQ(hi, 900.1f);
  EXPECT_FLOAT_EQ(lo, 100.9f);
  EXPECT_EQ(AbsPercentile(v.data(), 1000, 100.0), 1000.0f);
}

TEST(LinearQuant, KlThresholdOnConstructedData) {
  std::mt19937 rng(5);
  std::exponential_distribution<float> ex(1);
  std::vector<float> v(20000);
  for (float& x : v) x = (rng() & 1 ? 1.0f : -1.0f) * ex(rng);  // Laplace: a long tail
  float amax = 0;
  for (float x : v) amax = std::max(amax, std::fabs(x));
  const int64_t n = static_cast<int64_t>(v.size());
  const float t4 = KlThreshold(v.data(), n, 4, 2048), t8 = KlThreshold(v.data(), n, 8, 2048);
  EXPECT_GT(t4, 3.0f);           // well past the bulk (|x| < 3 for 95% of the values)
  EXPECT_LT(t4, 0.7f * amax);    // and well short of the largest value
  EXPECT_GT(t8, t4);             // more levels afford a wider range
  EXPECT_LT(t8, 0.9f * amax);
  // A Gaussian has no tail worth cutting at 8 bits.
  std::normal_distribution<float> nd(0, 1);
  for (float& x : v) x = nd(rng);
  amax = 0;
  for (float x : v) amax = std::max(amax, std::fabs(x));
  EXPECT_GE(KlThreshold(v.data(), n, 8, 2048), 0.95f * amax);
  // As pytorch-quantization (no smoothing): outliers behind empty bins cannot be clipped, since Q is 0
  // where the histogram is empty and P would be positive there.
  for (int i = 0; i < 10; ++i) v[static_cast<size_t>(i)] = 100.0f;
  EXPECT_EQ(KlThreshold(v.data(), n, 8, 2048), 100.0f);
  std::vector<float> zeros(100, 0.0f);
  EXPECT_EQ(KlThreshold(zeros.data(), 100, 8, 2048), 0.0f);
}

TEST(LinearQuant, Log2Codes) {
  const int bits = 4;  // magnitudes 2^0 .. 2^-6 of the scale, and 0
  for (int e = 0; e <= 6; ++e) {
    for (float sign : {1.0f, -1.0f}) {
      const float x = sign * std::ldexp(1.0f, -e);
      EXPECT_EQ(Log2Value(Log2Code(x, 1.0f, bits), 1.0f, bits), x);
    }
  }
  EXPECT_EQ(Log2Value(Log2Code(0.7f, 1.0f, bits), 1.0f, bits), 0.5f);
  EXPECT_EQ(Log2Value(Log2Code(0.8f, 1.0f, bits), 1.0f, bits), 1.0f);
  EXPECT_EQ(Log2Value(Log2Code(3.0f, 1.0f, bits), 1.0f, bits), 1.0f);       // saturates
  EXPECT_EQ(Log2Value(Log2Code(0.0078f, 1.0f, bits), 1.0f, bits), 0.0f);    // below half of 2^-6
  EXPECT_EQ(Log2Value(Log2Code(0.0080f, 1.0f, bits), 1.0f, bits), 0.015625f);
  // Through the matrix quantizer: the scale is the row's max |x|.
  std::vector<float> w = {0.5f, -0.25f, 0.125f, 0.0f, -0.5f, 0.0625f};
  LinearQuantSpec spec = Spec(bits, true, QuantConvention::kGptq);
  spec.grid = QuantGrid::kLog2;
  spec.granularity = QuantGranularity::kPerChannel;
  auto q = QuantizeLinear(w.data(), 1, 6, spec);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->scales[0], 0.5f);
  EXPECT_EQ(q->Dequantize(), w);
}

TEST(LinearQuant, PerTensorSharesOneScale) {
  std::vector<float> w = {1, -2, 3, 0.5f, 0.25f, 0.125f};
  LinearQuantSpec spec = Spec(4, false, QuantConvention::kGptq);
  spec.granularity = QuantGranularity::kPerTensor;
  auto q = QuantizeLinear(w.data(), 2, 3, spec);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->n_groups(), 1);
  EXPECT_EQ(q->scales[0], q->scales[1]);
  EXPECT_EQ(q->scales[0], RoundScale(5.0f / 15.0f, ScaleRounding::kF16));
}

}  // namespace
}  // namespace lowbit

// Row dot products and matrix products.
//  - The reference integer kernels compute what the formats mean: dot(quantized row, quantized
//    activations) stays within the activation-quantization bound of the F32 dot of the dequantized
//    row with the original activations.
//  - Every ISA table the CPU runs agrees with the reference within float rounding.
//  - MatMul gives the same numbers whatever the thread count or row stride; batched products give
//    the 1-token kernel's numbers, or the reference kernel's where a GEMM kernel runs them.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "lowbit/kernels/dot.h"
#include "lowbit/kernels/matvec.h"
#include "lowbit/kernels/softmax.h"
#include "lowbit/numeric/blocks.h"
#include "lowbit/numeric/dequant.h"
#include "lowbit/numeric/half.h"
#include "lowbit/quant/quantize.h"

namespace lowbit {
namespace {

struct Case {
  std::vector<float> w, x, deq;
  std::vector<uint8_t> row, act;
};

Case MakeCase(GgmlType t, int64_t n, std::mt19937& rng, bool outliers) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Case c;
  c.w.resize(n);
  c.x.resize(n);
  c.deq.resize(n);
  for (auto& v : c.w) v = nd(rng) * 0.02f;
  for (auto& v : c.x) v = nd(rng);
  if (outliers) {
    for (int64_t i = 0; i < n; i += 97) c.x[i] *= -40.0f;  // a negative activation of largest magnitude per block
  }
  c.row.resize(*RowBytes(t, n));
  FromFloatFor(t)(c.w.data(), c.row.data(), n, nullptr);
  ToFloatFor(t)(c.row.data(), c.deq.data(), n);
  c.act.resize(ActRowBytes(t, n));
  QuantizeActivations(t, c.x.data(), c.act.data(), n);
  return c;
}

// Types with both a quantizer (to make rows) and a dot product.
std::vector<GgmlType> DotTypes() {
  std::vector<GgmlType> out;
  for (const GgmlTypeInfo& t : AllGgmlTypes()) {
    if (DotKernelsFor(Isa::kRef).For(t.type) != nullptr && FromFloatFor(t.type) != nullptr) out.push_back(t.type);
  }
  return out;
}

// `rows` rows of Gaussian weights (sd 0.02) quantized to t, RowBytes(t, cols) bytes apart.
std::vector<uint8_t> RandomRows(GgmlType t, int64_t rows, int64_t cols, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> wf(rows * cols);
  for (auto& v : wf) v = nd(rng) * 0.02f;
  const uint64_t rb = *RowBytes(t, cols);
  std::vector<uint8_t> w(rows * rb);
  for (int64_t r = 0; r < rows; ++r) FromFloatFor(t)(wf.data() + r * cols, w.data() + r * rb, cols, nullptr);
  return w;
}

TEST(DotReference, IntegerKernelsMatchTheDequantizedDotWithinActivationRounding) {
  std::mt19937 rng(5);
  const DotKernels& ref = DotKernelsFor(Isa::kRef);
  int integer_types = 0;
  for (GgmlType t : DotTypes()) {
    const GgmlType act = ActTypeFor(t);
    if (act == GgmlType::kF32) continue;
    ++integer_types;
    const int64_t ab = TypeInfo(act).block_size;
    for (bool outliers : {false, true}) {
      const int64_t n = 4096;
      Case c = MakeCase(t, n, rng, outliers);
      double exact = 0, bound = 0;
      for (int64_t i = 0; i < n; ++i) exact += static_cast<double>(c.deq[i]) * c.x[i];
      for (int64_t b = 0; b < n; b += ab) {  // |x - x_q| <= amax / 254 per activation block (+ fp16 scale rounding)
        double amax = 0, wsum = 0;
        for (int64_t i = b; i < b + ab; ++i) amax = std::max(amax, std::fabs(static_cast<double>(c.x[i]))), wsum += std::fabs(c.deq[i]);
        bound += wsum * amax * (0.5 / 127.0 + 1e-3);
      }
      const float got = ref.For(t)(c.row.data(), c.act.data(), n);
      EXPECT_NEAR(got, exact, bound) << TypeInfo(t).name << (outliers ? " outliers" : "");
    }
  }
  EXPECT_EQ(integer_types, 12);  // Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 IQ4_NL Q2_K..Q6_K IQ4_XS
}

class DotKernelsTest : public ::testing::TestWithParam<Isa> {};

TEST_P(DotKernelsTest, MatchReferenceOnEveryType) {
  const DotKernels& k = DotKernelsFor(GetParam());
  const DotKernels& ref = DotKernelsFor(Isa::kRef);
  std::mt19937 rng(11);
  int types = 0;
  for (GgmlType t : DotTypes()) {
    ASSERT_NE(k.For(t), nullptr) << TypeInfo(t).name;
    // 300 (the float types only): the 8-wide step and the scalar tail after the 32-wide loop.
    for (int64_t n : {int64_t{256}, int64_t{300}, int64_t{768}, int64_t{4096}}) {
      if (n % TypeInfo(t).block_size) continue;
      for (bool outliers : {false, true}) {
        Case c = MakeCase(t, n, rng, outliers);
        double mag = 0;
        for (int64_t i = 0; i < n; ++i) mag += std::fabs(static_cast<double>(c.deq[i]) * c.x[i]);
        const float want = ref.For(t)(c.row.data(), c.act.data(), n);
        const float got = k.For(t)(c.row.data(), c.act.data(), n);
        EXPECT_NEAR(got, want, 2e-6 * mag + 1e-7) << TypeInfo(t).name << " n=" << n;
        if (k.For4(t) != nullptr) {  // the 4-token prefill kernel: each result bit-equal to the 1-token one
          std::vector<uint8_t> acts(4 * c.act.size());
          std::vector<float> singles(4);
          for (int j = 0; j < 4; ++j) {
            std::vector<float> xj(c.x);
            for (auto& v : xj) v *= static_cast<float>(j + 1) * (j % 2 ? -1.0f : 1.0f);
            QuantizeActivations(t, xj.data(), acts.data() + j * c.act.size(), n);
            singles[j] = k.For(t)(c.row.data(), acts.data() + j * c.act.size(), n);
          }
          float four[4];
          k.For4(t)(c.row.data(), acts.data(), c.act.size(), n, four);
          for (int j = 0; j < 4; ++j) EXPECT_EQ(four[j], singles[j]) << TypeInfo(t).name << " token " << j;
        }
      }
    }
    ++types;
  }
  EXPECT_GE(types, 16);
}

INSTANTIATE_TEST_SUITE_P(EveryIsaThisCpuRuns, DotKernelsTest, ::testing::ValuesIn(SupportedIsas()),
                         [](const auto& p) { return std::string(IsaName(p.param)); });

// The activation rows as a GEMM reads them: in its layout, where it has one (bytes it leaves alone
// are 0xA5).
std::vector<uint8_t> InLayout(Gemm8LayoutFn layout, const std::vector<uint8_t>& act, uint64_t ab, int64_t n, int64_t ntok) {
  if (layout == nullptr) return act;
  std::vector<uint8_t> out(act.size(), 0xA5);
  layout(act.data(), ab, n, ntok, out.data());
  return out;
}

// The 8-row kernels (the prefill GEMM, and the one-token kernel that reads the rows in place), or
// the 16-row GEMM (rows = 16), against the reference kernel, bit for bit. `layout`: the GEMM's
// activation layout, if any.
void Check8RowKernel(GgmlType t, Gemm8Fn f, int64_t ntok, std::mt19937& rng, Gemm8LayoutFn layout = nullptr, int rows = 8) {
  const DotKernels& ref = DotKernelsFor(Isa::kRef);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t n = 1024;
  const uint64_t rb = *RowBytes(t, n), ab = ActRowBytes(t, n);
  std::vector<float> w(rows * n), x(ntok * n);
  for (auto& v : w) v = nd(rng) * 0.02f;
  for (auto& v : x) v = nd(rng);
  for (int64_t i = 0; i < n; i += 41) x[i] *= -30.0f;
  std::vector<uint8_t> wq(rows * rb), act(ntok * ab);
  for (int r = 0; r < rows; ++r) FromFloatFor(t)(w.data() + r * n, wq.data() + r * rb, n, nullptr);
  for (int64_t b = 0; b < ntok; ++b) QuantizeActivations(t, x.data() + b * n, act.data() + b * ab, n);
  std::vector<float> y(ntok * rows);
  f(wq.data(), rb, n, InLayout(layout, act, ab, n, ntok).data(), ab, ntok, y.data(), rows);
  for (int64_t b = 0; b < ntok; ++b) {
    for (int r = 0; r < rows; ++r) {
      EXPECT_EQ(y[b * rows + r], ref.For(t)(wq.data() + r * rb, act.data() + b * ab, n)) << TypeInfo(t).name << " row " << r << " tok " << b;
    }
  }
}

// Every type's GEMM on `rows` (8 or 16) rows against the reference, with passes of 8 tokens (4
// pairs), single pairs and an odd last token in the VNNI GEMM; returns the number of types tested.
int CheckEveryGemm(const DotKernels& k, int rows, std::mt19937& rng) {
  int tested = 0;
  for (GgmlType t : DotTypes()) {
    const Gemm8Fn f = rows == 16 ? k.ForGemm16(t) : k.ForGemm8(t);
    if (f == nullptr) continue;
    ++tested;
    for (int64_t ntok : {5, 11, 16}) Check8RowKernel(t, f, ntok, rng, k.ForGemm8Layout(t), rows);
  }
  return tested;
}

TEST_P(DotKernelsTest, Gemm8EqualsTheReferenceBitForBit) {
  std::mt19937 rng(8);
  const int tested = CheckEveryGemm(DotKernelsFor(GetParam()), 8, rng);
  if (GetParam() != Isa::kRef) {
    // Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K; Q8_0, IQ4_NL and IQ4_XS with VNNI.
    EXPECT_EQ(tested, GetParam() == Isa::kAvx512 ? 12 : 9);
  }
}

TEST_P(DotKernelsTest, Gemm16EqualsTheReferenceBitForBit) {
  std::mt19937 rng(16);
  // With VNNI: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL and Q4_K.
  EXPECT_EQ(CheckEveryGemm(DotKernelsFor(GetParam()), 16, rng), GetParam() == Isa::kAvx512 ? 7 : 0);
}

// The GEMM's integer sums at their largest: super-blocks of all-ones bytes (every code at its
// maximum: Q2_K 3, Q3_K 7, Q4_K 15, Q5_K 31, Q6_K 63; scales and mins at theirs) against activations
// of one sign (every Q8_K code +-127), where the 16-bit multiply of the VNNI path would overflow if
// its bound were wrong. The 8-row decode kernels (rows8) likewise: their 512-bit VNNI forms multiply
// each 4-code sum by its scale in 16 bits (dot_x86_rows8_vnni.inc).
TEST_P(DotKernelsTest, Gemm8EqualsTheReferenceAtTheLargestCodes) {
  const DotKernels& k = DotKernelsFor(GetParam());
  const DotKernels& ref = DotKernelsFor(Isa::kRef);
  using enum GgmlType;
  struct Half16 { GgmlType t; std::vector<size_t> fp16_at; };  // the block's fp16 fields
  const Half16 types[] = {{kQ2_K, {offsetof(BlockQ2_K, d), offsetof(BlockQ2_K, dmin)}},
                          {kQ3_K, {offsetof(BlockQ3_K, d)}},
                          {kQ4_K, {offsetof(BlockQ4_K, d), offsetof(BlockQ4_K, dmin)}},
                          {kQ5_K, {offsetof(BlockQ5_K, d), offsetof(BlockQ5_K, dmin)}},
                          {kQ6_K, {offsetof(BlockQ6_K, d)}},
                          {kIQ4_XS, {offsetof(BlockIQ4_XS, d)}}};  // every value 113 (+ 128), every scale 31
  const int64_t n = 512, ntok = 5;
  for (const Half16& h : types) {
    if (k.ForGemm8(h.t) == nullptr && k.ForRows8(h.t) == nullptr) continue;
    const uint64_t rb = *RowBytes(h.t, n), ab = ActRowBytes(h.t, n), bb = TypeInfo(h.t).block_bytes;
    std::vector<uint8_t> wq(8 * rb, 0xFF), act(ntok * ab);
    for (uint64_t b = 0; b < 8 * rb / bb; ++b) {
      for (size_t at : h.fp16_at) {
        const uint16_t d = Fp32ToFp16(0.01f * static_cast<float>(1 + b % 3));
        std::memcpy(wq.data() + b * bb + at, &d, 2);
      }
    }
    for (int64_t b = 0; b < ntok; ++b) {
      const std::vector<float> x(n, b % 2 ? -1.5f : 2.0f);
      QuantizeActivations(h.t, x.data(), act.data() + b * ab, n);
    }
    for (const char* what : {"gemm8", "rows8"}) {
      const bool gemm = std::string(what) == "gemm8";
      const Gemm8Fn f = gemm ? k.ForGemm8(h.t) : k.ForRows8(h.t);
      if (f == nullptr) continue;
      std::vector<float> y(ntok * 8);
      f(wq.data(), rb, n, gemm ? InLayout(k.ForGemm8Layout(h.t), act, ab, n, ntok).data() : act.data(), ab, ntok, y.data(), 8);
      for (int64_t b = 0; b < ntok; ++b) {
        for (int r = 0; r < 8; ++r) {
          EXPECT_EQ(y[b * 8 + r], ref.For(h.t)(wq.data() + r * rb, act.data() + b * ab, n))
              << what << " " << TypeInfo(h.t).name << " row " << r << " tok " << b;
        }
      }
    }
  }
}

TEST_P(DotKernelsTest, Rows8EqualsTheReferenceBitForBit) {
  const DotKernels& k = DotKernelsFor(GetParam());
  std::mt19937 rng(9);
  int tested = 0;
  for (GgmlType t : DotTypes()) {
    if (k.ForRows8(t) == nullptr) continue;
    ++tested;
    Check8RowKernel(t, k.ForRows8(t), 1, rng);
    Check8RowKernel(t, k.ForRows8(t), 2, rng);  // the contract holds for any token count
  }
  if (GetParam() != Isa::kRef) {
    // F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, Q4_K, Q5_K, Q6_K; Q2_K and Q3_K with VNNI.
    EXPECT_EQ(tested, GetParam() == Isa::kAvx512 ? 14 : 12);
  }
}

// The softmax's own exp (kernels/softmax.h) against std::exp in double over its whole domain: within
// 1 ulp (measured: relative 8.0e-8, 0.97 ulp), 1 at 0, and at -87 and below the value of exp(-87).
TEST(Softmax, ExpIsWithinOneUlpOfTheExactValue) {
  double worst = 0;
  for (int i = 0; i <= 2000000; ++i) {
    const float x = -87.0f * static_cast<float>(i) / 2000000.0f;
    const double want = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::fabs(softmax::Exp(x) - want) / want);
  }
  EXPECT_LT(worst, 1.2e-7);
  EXPECT_EQ(softmax::Exp(0.0f), 1.0f);
  EXPECT_EQ(softmax::Exp(-0.0f), 1.0f);
  EXPECT_EQ(softmax::Exp(-1000.0f), softmax::Exp(-87.0f));
  EXPECT_EQ(softmax::Exp(-INFINITY), softmax::Exp(-87.0f));
  EXPECT_NEAR(softmax::Exp(-87.0f), std::exp(-87.0), 1e-44);
}

// SiLU from that exp (softmax::Silu) against g / (1 + exp(-g)) in double: relative error under 3e-7
// (2-5 ulp) from -87 to 87 (measured: 2.1e-7 at most), 0 at 0, g itself far above (and at +inf), a
// magnitude under 1e-35 far below (exp is clamped at -87; the exact value is smaller still), and NaN
// stays NaN.
TEST(Softmax, SiluIsWithinAFewUlpOfTheExactValue) {
  double worst = 0;
  for (int i = -1000000; i <= 1000000; ++i) {
    const float g = 87.0f * static_cast<float>(i) / 1000000.0f;
    if (g == 0.0f) continue;
    const double want = g / (1.0 + std::exp(-static_cast<double>(g)));
    worst = std::max(worst, std::fabs(softmax::Silu(g) - want) / std::fabs(want));
  }
  EXPECT_LT(worst, 3e-7);
  EXPECT_EQ(softmax::Silu(0.0f), 0.0f);
  EXPECT_EQ(softmax::Silu(100.0f), 100.0f);
  EXPECT_EQ(softmax::Silu(INFINITY), INFINITY);
  EXPECT_LT(std::fabs(softmax::Silu(-100.0f)), 1e-35f);
  EXPECT_TRUE(std::isnan(softmax::Silu(NAN)));
}

// The SwiGLU gating of every table equals the reference bit for bit, over lengths that leave every
// tail, with values across exp's range and the special ones (zeros of both signs, infinities, NaN).
TEST_P(DotKernelsTest, SwiGluEqualsTheReferenceBitForBit) {
  const DotKernels& k = DotKernelsFor(GetParam());
  const DotKernels& ref = DotKernelsFor(Isa::kRef);
  ASSERT_NE(k.swiglu, nullptr);
  std::mt19937 rng(21);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (int64_t n : {1, 7, 8, 9, 31, 1000}) {
    for (float spread : {1.0f, 10.0f, 60.0f}) {
      std::vector<float> gate(n), up(n);
      for (auto& x : gate) x = nd(rng) * spread;
      for (auto& x : up) x = nd(rng);
      if (n >= 9) {
        const float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 200.0f, -200.0f, 87.5f, -87.5f};
        std::copy(std::begin(special), std::end(special), gate.begin());
      }
      std::vector<float> got(n), want(n), in_place = gate;
      k.swiglu(gate.data(), up.data(), got.data(), n);
      ref.swiglu(gate.data(), up.data(), want.data(), n);
      k.swiglu(in_place.data(), up.data(), in_place.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(std::bit_cast<uint32_t>(got[i]), std::bit_cast<uint32_t>(want[i])) << "n " << n << " i " << i << " gate " << gate[i];
        ASSERT_EQ(std::bit_cast<uint32_t>(in_place[i]), std::bit_cast<uint32_t>(want[i])) << "in place, n " << n << " i " << i;
      }
    }
  }
}

// Attention of 1 or 3 query heads sharing one K/V head (F32 and F16 rows, the head at an offset
// inside wider rows, enough positions to span several of the kernels' position tiles): every table
// equals the reference bit for bit, and the reference equals a double-precision softmax attention
// within float rounding, also with scores large enough to overflow exp unshifted.
TEST_P(DotKernelsTest, AttendEqualsTheReferenceBitForBit) {
  const DotKernels& k = DotKernelsFor(GetParam());
  const DotKernels& ref = DotKernelsFor(Isa::kRef);
  std::mt19937 rng(12);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (bool f16 : {false, true}) {
    ASSERT_NE(k.ForAttend(f16), nullptr);
    const size_t el = f16 ? 2 : 4;
    for (int64_t hd : {64, 128, 80, 100, 3}) {
      for (int64_t n_pos : {1, 7, 33, 200}) {
        for (int64_t n_q : {1, 3, 6, 8}) {
          const float q_scale = n_q == 1 ? 1.0f : 40.0f;
          const int64_t width = 3 * hd + 5, head = 2 * hd;  // floats per cache row, the head's first element
          std::vector<float> kf(n_pos * width), vf(n_pos * width), q(n_q * hd);
          for (auto& x : kf) x = nd(rng);
          for (auto& x : vf) x = nd(rng);
          for (auto& x : q) x = nd(rng) * q_scale;
          std::vector<uint8_t> kc(kf.size() * el), vc(vf.size() * el);
          for (size_t i = 0; i < kf.size(); ++i) {
            if (f16) {
              const uint16_t hk = Fp32ToFp16(kf[i]), hv = Fp32ToFp16(vf[i]);
              std::memcpy(kc.data() + 2 * i, &hk, 2);
              std::memcpy(vc.data() + 2 * i, &hv, 2);
              kf[i] = Fp16ToFp32(hk);
              vf[i] = Fp16ToFp32(hv);
            } else {
              std::memcpy(kc.data() + 4 * i, &kf[i], 4);
              std::memcpy(vc.data() + 4 * i, &vf[i], 4);
            }
          }
          const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
          std::vector<float> att(n_q * n_pos), got(n_q * hd), want(n_q * hd);
          const uint64_t stride = static_cast<uint64_t>(width) * el, off = static_cast<uint64_t>(head) * el;
          k.ForAttend(f16)(q.data(), n_q, kc.data() + off, vc.data() + off, stride, n_pos, hd, scale, att.data(), got.data());
          ref.ForAttend(f16)(q.data(), n_q, kc.data() + off, vc.data() + off, stride, n_pos, hd, scale, att.data(), want.data());
          for (int64_t g = 0; g < n_q; ++g) {
            std::vector<double> p(n_pos);
            double mx = -1e300, sum = 0;
            for (int64_t t = 0; t < n_pos; ++t) {
              double d = 0;
              for (int64_t i = 0; i < hd; ++i) d += static_cast<double>(q[g * hd + i]) * kf[t * width + head + i];
              p[t] = d * scale;
              mx = std::max(mx, p[t]);
            }
            for (auto& x : p) sum += x = std::exp(x - mx);
            for (int64_t i = 0; i < hd; ++i) {
              ASSERT_EQ(got[g * hd + i], want[g * hd + i]) << "f16 " << f16 << " hd " << hd << " n_pos " << n_pos << " query " << g << " element " << i;
              double o = 0;
              for (int64_t t = 0; t < n_pos; ++t) o += p[t] / sum * vf[t * width + head + i];
              // Scores carry the dot's rounding (relative 1e-6 of |q||k|, times 40 for the large ones).
              EXPECT_NEAR(want[g * hd + i], o, 2e-4 * q_scale) << "f16 " << f16 << " hd " << hd << " n_pos " << n_pos << " query " << g;
            }
          }
        }
      }
    }
  }
}

TEST(MatMul, SameResultForAnyBatchThreadsAndStride) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  ThreadPool pool(2);
  MatMulScratch scratch;
  for (GgmlType t : {GgmlType::kF32, GgmlType::kQ4_0, GgmlType::kQ4_K, GgmlType::kQ6_K}) {
    // 104 rows: 16-row GEMM chunks and one of 8 where the table has both; 37 tokens: an odd one.
    const int64_t rows = 104, cols = 1024, batch = 37, pad_cols = 1280;
    // Weights stored with 256 extra columns per row: the product uses a view of the first `cols`.
    const std::vector<uint8_t> w = RandomRows(t, rows, pad_cols, rng);
    const uint64_t stride = *RowBytes(t, pad_cols);
    std::vector<float> x(batch * cols);
    for (auto& v : x) v = nd(rng);
    MatMulArgs a{.type = t, .w = w.data(), .rows = rows, .cols = cols, .row_stride = stride, .x = x.data(), .batch = batch};
    std::vector<float> y(batch * rows), y1(rows);
    a.y = y.data();
    MatMul(a, &pool, &scratch);
    const DotKernels& k = ActiveDotKernels();
    std::vector<uint8_t> act(ActRowBytes(t, cols));
    for (int64_t b = 0; b < batch; ++b) {
      MatMulArgs one = a;
      one.x = x.data() + b * cols;
      one.batch = 1;
      one.y = y1.data();
      MatMul(one, nullptr, &scratch);
      QuantizeActivations(t, one.x, act.data(), cols);
      for (int64_t r = 0; r < rows; ++r) {
        // Batched rows go through the GEMM where the CPU has one (bit-equal to the reference
        // kernel, not to the SIMD 1-token kernel's summation order): equal within float rounding.
        if (k.ForGemm8(t) != nullptr) {
          ASSERT_EQ(y[b * rows + r], DotKernelsFor(Isa::kRef).For(t)(w.data() + r * stride, act.data(), cols)) << TypeInfo(t).name;
        } else {
          ASSERT_EQ(y[b * rows + r], y1[r]) << TypeInfo(t).name;
        }
        if (k.ForRows8(t) != nullptr) {  // one token: the in-place 8-row kernel, bit-equal to the reference
          ASSERT_EQ(y1[r], DotKernelsFor(Isa::kRef).For(t)(w.data() + r * stride, act.data(), cols)) << TypeInfo(t).name;
        } else {
          ASSERT_EQ(y1[r], k.For(t)(w.data() + r * stride, act.data(), cols));
        }
      }
    }
  }
}


TEST(MatMul, OneTokenUsesTheEightRowKernelAndTheRowKernelForTheRest) {
  std::mt19937 rng(4);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  ThreadPool pool(2);
  MatMulScratch scratch;
  const DotKernels& k = ActiveDotKernels();
  const DotKernels& ref = DotKernelsFor(Isa::kRef);
  for (GgmlType t : {GgmlType::kQ4_0, GgmlType::kQ8_0, GgmlType::kQ5_1}) {
    const int64_t rows = 100, cols = 512;  // 12 groups of 8 rows, then 4 rows on the row kernel
    const std::vector<uint8_t> w = RandomRows(t, rows, cols, rng);
    const uint64_t rb = *RowBytes(t, cols);
    std::vector<float> x(cols);
    for (auto& v : x) v = nd(rng);
    std::vector<uint8_t> act(ActRowBytes(t, cols));
    QuantizeActivations(t, x.data(), act.data(), cols);
    for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
      std::vector<float> y(rows);
      MatMul(MatMulArgs{.type = t, .w = w.data(), .rows = rows, .cols = cols, .x = x.data(), .batch = 1, .y = y.data()}, p, &scratch);
      for (int64_t r = 0; r < rows; ++r) {
        const DotKernels& want = k.ForRows8(t) != nullptr && r < 96 ? ref : k;
        ASSERT_EQ(y[r], want.For(t)(w.data() + r * rb, act.data(), cols)) << TypeInfo(t).name << " row " << r;
      }
    }
  }
}


// Activation rows from every table equal the reference's bytes: Gaussian rows, rows whose products
// land on halves (round half away from zero vs to even), an all-zero block, blocks whose largest
// magnitude appears with both signs (Q8_K takes the first), and tiny values whose d is an fp16
// subnormal. The 32-element rows have 67 blocks: the SIMD quantizers take 8 blocks at a time and
// the last 3 one at a time.
TEST_P(DotKernelsTest, ActivationRowsEqualTheReferenceBytes) {
  const DotKernels& k = DotKernelsFor(GetParam());
  const DotKernels& ref = DotKernelsFor(Isa::kRef);
  std::mt19937 rng(21);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t n = 2144;
  for (int pattern = 0; pattern < 5; ++pattern) {
    std::vector<float> x(n);
    for (auto& v : x) v = nd(rng) * (pattern == 0 ? 1.0f : pattern == 4 ? 2e-4f : 30.0f);
    if (pattern == 1) {
      for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(static_cast<int>(x[i])) + 0.5f;  // halves, amax gives d
      for (int64_t b = 0; b < n; b += 32) {
        x[b] = 127.0f;  // d = 1: the products are halves, or the largest floats under one
        x[b + 1] = std::nextafter(0.5f, 0.0f);
        x[b + 2] = -std::nextafter(0.5f, 0.0f);
        x[b + 3] = std::nextafter(2.5f, 0.0f);
      }
    }
    if (pattern == 2) std::fill(x.begin() + 256, x.begin() + 512, 0.0f);
    if (pattern == 3) {
      for (int64_t b = 0; b + 256 <= n; b += 256) {
        x[b + 7] = 500.0f * (b % 512 ? 1.0f : -1.0f);
        x[b + 200] = -x[b + 7];
      }
    }
    for (GgmlType w : {GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ4_K}) {
      const int64_t len = w == GgmlType::kQ4_K ? n / 256 * 256 : n;
      std::vector<uint8_t> want(ActRowBytes(w, len)), got(ActRowBytes(w, len));
      QuantizeActivations(ref, w, x.data(), want.data(), len);
      QuantizeActivations(k, w, x.data(), got.data(), len);
      EXPECT_EQ(got, want) << TypeInfo(ActTypeFor(w)).name << " pattern " << pattern;
    }
  }
}

// A group of one-token products (a layer's Q/K/V or gate/up) handed to the pool as one row range
// gives each product exactly what it gives alone on one thread: the chunks start on whole groups of
// 8 rows, so the 8-row kernel and the row kernel see the same rows. Large enough to be threaded, with
// row counts that are not multiples of 8. With `shared_input` every product reads the same x, as a
// layer's do, and products whose weight types take the same activation type share one conversion.
// With batch 2-7 (a serving step) likewise, batch-invariant (the 8-row kernels) or not (the dots).
void CheckGroupEqualsProductsAlone(std::initializer_list<std::pair<GgmlType, int64_t>> products, bool shared_input, int64_t batch = 1,
                                   bool invariant = false) {
  std::mt19937 rng(12);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  ThreadPool pool(2);
  MatMulScratch scratch;
  struct Product {
    GgmlType type;
    int64_t rows;
    std::vector<uint8_t> w;
    std::vector<float> x, y, alone;
  };
  const int64_t cols = 512;
  std::vector<float> common(cols * batch);
  for (auto& v : common) v = nd(rng);
  std::vector<Product> ps;
  for (auto [t, rows] : products) {
    Product p{t, rows, RandomRows(t, rows, cols, rng), std::vector<float>(cols * batch), std::vector<float>(rows * batch, NAN),
              std::vector<float>(rows * batch)};
    for (auto& v : p.x) v = nd(rng);
    ps.push_back(std::move(p));
  }
  auto args = [&](Product& p, float* y) {
    return MatMulArgs{.type = p.type, .w = p.w.data(), .rows = p.rows, .cols = cols, .x = shared_input ? common.data() : p.x.data(), .batch = batch,
                      .y = y, .batch_invariant = invariant};
  };
  std::vector<MatMulArgs> group;
  for (Product& p : ps) {
    MatMul(args(p, p.alone.data()), nullptr, &scratch);
    group.push_back(args(p, p.y.data()));
  }
  ASSERT_LE(group.size(), kMaxMatMulGroup);
  MatMulGroup(group, &pool, &scratch);
  for (const Product& p : ps) {
    for (int64_t r = 0; r < p.rows * batch; ++r) ASSERT_EQ(p.y[r], p.alone[r]) << TypeInfo(p.type).name << " token " << r / p.rows << " row " << r % p.rows;
  }
  // One product alone on two threads (chunks of DecodeGrain rows) gives the same numbers too.
  std::vector<float> y2(ps[0].rows * batch, NAN);
  MatMul(args(ps[0], y2.data()), &pool, &scratch);
  for (int64_t r = 0; r < ps[0].rows * batch; ++r) ASSERT_EQ(y2[r], ps[0].alone[r]) << "row " << r;
}

// A different weight type, input and activation type each.
TEST(MatMul, GroupOfOneTokenProductsEqualsEachProductAlone) {
  CheckGroupEqualsProductsAlone({{GgmlType::kQ4_0, 1003}, {GgmlType::kQ4_K, 205}, {GgmlType::kF16, 64}, {GgmlType::kQ8_0, 333}}, false);
}

// One input: Q4_0 and Q8_0 share a Q8_0 row, Q4_K and Q6_K a Q8_K row (as Q4_K_M's Q/K and V).
TEST(MatMul, GroupOfOneTokenProductsOnOneInputEqualsEachProductAlone) {
  CheckGroupEqualsProductsAlone({{GgmlType::kQ4_0, 1003}, {GgmlType::kQ4_K, 205}, {GgmlType::kQ8_0, 333}, {GgmlType::kQ6_K, 260}}, true);
}

// Serving steps of 2-7 tokens go through the group as one row range too.
TEST(MatMul, GroupOfDecodeStepProductsEqualsEachProductAlone) {
  for (int64_t batch : {2, 3, 7}) {
    for (bool invariant : {true, false}) {
      SCOPED_TRACE(::testing::Message() << "batch " << batch << (invariant ? " invariant" : ""));
      CheckGroupEqualsProductsAlone({{GgmlType::kQ4_0, 1003}, {GgmlType::kQ4_K, 205}, {GgmlType::kQ8_0, 333}, {GgmlType::kQ6_K, 260}}, true, batch,
                                    invariant);
      CheckGroupEqualsProductsAlone({{GgmlType::kQ4_K, 517}, {GgmlType::kF16, 64}, {GgmlType::kQ5_K, 96}}, false, batch, invariant);
    }
  }
}

TEST(MatMul, DecodeGrainIsAWholeNumberOfEightRowGroups) {
  for (int64_t rows : {1, 8, 100, 256, 2048, 5632, 32000}) {
    for (int threads : {2, 3, 16}) {
      const size_t g = DecodeGrain(rows, threads);
      EXPECT_EQ(g % 8, 0u) << rows << " " << threads;
      EXPECT_GE(g, 8u);
      EXPECT_LE((static_cast<size_t>(rows) + g - 1) / g, static_cast<size_t>(16 * threads)) << rows << " " << threads;
    }
  }
}

}  // namespace
}  // namespace lowbit

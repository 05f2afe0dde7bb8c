// bitsandbytes' 4-bit types' kernels (NF4G32 .. FP4G64 against F32 activations, NF4G64x2 / FP4G64x2
// against int16 ones):
//  - the reference dot equals the exact sum of the dequantized weights times x within float rounding
//    (and, for the paired types, within the int16 rounding of levels and activations, bounded);
//  - the paired types' activation quantizer puts every element where kernels/dot_bnb.h says, and every
//    table's own quantizer writes its bytes;
//  - every ISA table's dot, 4-token dot and 8-row kernel equal the reference bit for bit, on random rows (every
//    code, scales over many octaves) and on stories5M's weights quantized to NF4 / FP4;
//  - MatMul over such a matrix gives the reference's row results for decode and prefill.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "lowbit/base/thread_pool.h"
#include "lowbit/formats/gguf_reader.h"
#include "lowbit/kernels/dot.h"
#include "lowbit/kernels/dot_bnb.h"
#include "lowbit/kernels/matvec.h"
#include "lowbit/numeric/bnb.h"
#include "lowbit/numeric/dequant.h"
#include "lowbit/quant/bnb_quant.h"
#include "test_data.h"

namespace lowbit {
namespace {

using enum GgmlType;
const GgmlType kTypes[] = {kNF4G32, kNF4G64, kFP4G32, kFP4G64, kNF4G64x2, kFP4G64x2};

std::vector<uint8_t> RandomRows(GgmlType t, int64_t rows, int64_t n, std::mt19937& rng) {
  const uint64_t bb = TypeInfo(t).block_bytes, nd = IsBnb4PairType(t) ? 2 : 1;  // absmaxes per block
  std::vector<uint8_t> w(static_cast<size_t>(rows) * *RowBytes(t, static_cast<uint64_t>(n)));
  std::uniform_real_distribution<float> octave(-12.0f, 4.0f);
  for (uint64_t b = 0; b < w.size() / bb; ++b) {
    for (uint64_t j = 0; j < nd; ++j) {
      const float d = std::exp2(octave(rng));
      std::memcpy(w.data() + b * bb + 4 * j, &d, 4);
    }
    for (uint64_t i = 4 * nd; i < bb; ++i) w[b * bb + i] = static_cast<uint8_t>(rng());
  }
  return w;
}

// Rows of `count` tokens (n floats each) as the activation rows of weight type t, ActRowBytes apart.
std::vector<uint8_t> Act(GgmlType t, const float* x, int64_t count, int64_t n) {
  const uint64_t stride = ActRowBytes(t, n);
  std::vector<uint8_t> a(static_cast<size_t>(count) * stride);
  for (int64_t tk = 0; tk < count; ++tk) QuantizeActivations(t, x + tk * n, a.data() + tk * stride, n);
  return a;
}

bool Fits(GgmlType t, int64_t n) { return n % TypeInfo(t).block_size == 0; }

class BnbKernelsTest : public ::testing::TestWithParam<Isa> {};

TEST(BnbReference, IsTheDequantizedDotWithinRounding) {
  const DotKernels& ref = DotKernelsFor(Isa::kRef);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (GgmlType t : kTypes) {
    const int64_t n = 1024;
    const std::vector<uint8_t> w = RandomRows(t, 1, n, rng);
    std::vector<float> x(n), deq(n);
    for (auto& v : x) v = nd(rng);
    ASSERT_TRUE(DequantizeRow(t, w.data(), deq.data(), n));
    double exact = 0, mag = 0, rounding = 0;
    for (int64_t i = 0; i < n; ++i) exact += static_cast<double>(deq[i]) * x[i], mag += std::fabs(static_cast<double>(deq[i]) * x[i]);
    if (IsBnb4PairType(t)) {
      // An activation is off by at most half a step of its block (absmax / 16383), a level by half a
      // step of the weight block's absmax.
      for (int64_t b0 = 0; b0 < n; b0 += 64) {
        float amax = 0, d = 0;
        for (int64_t i = b0; i < b0 + 64; ++i) amax = std::max(amax, std::fabs(x[i]));
        std::memcpy(&d, w.data() + b0 / 128 * 72 + 4 * (b0 / 64 % 2), 4);
        for (int64_t i = b0; i < b0 + 64; ++i) rounding += (std::fabs(deq[i]) * amax + std::fabs(x[i]) * d) / 32766.0;
      }
    }
    const std::vector<uint8_t> a = Act(t, x.data(), 1, n);
    const float got = ref.For(t)(w.data(), a.data(), n);
    EXPECT_NEAR(got, exact, mag * 1e-6 + rounding) << TypeInfo(t).name;
    if (IsBnb4PairType(t)) {
      EXPECT_GT(std::fabs(got - exact), mag * 1e-7) << "int16 rounding should show";
    }
  }
}

TEST(BnbReference, PairActivationsSitWhereTheKernelsReadThem) {
  const int64_t n = 256;
  std::vector<float> x(n);
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(i % 64 == 5 ? 1000 + i : i + 1);  // distinct, and a known absmax per block
  std::vector<uint8_t> a(ActRowBytes(kNF4G64x2, n));
  QuantizeActivations(kNF4G64x2, x.data(), a.data(), n);
  const auto* q = reinterpret_cast<const int16_t*>(a.data());
  const auto* s = reinterpret_cast<const float*>(a.data() + BnbAct16ScalesOffset(n));
  for (int64_t e = 0; e < n; ++e) {
    const int64_t u = e / 128, r = e % 128, b = r / 64, k = r % 64 / 16, i = r % 16 / 2, h = r % 2;
    const float amax = x[e / 64 * 64 + 5];
    EXPECT_EQ(s[e / 64], amax / 16383.0f / 16383.0f) << e;
    EXPECT_EQ(q[128 * u + 32 * k + 4 * i + 2 * b + h], static_cast<int16_t>(std::nearbyint(x[e] * (16383.0f / amax)))) << e;
  }
  // Levels: +-1 maps to +-16383, and every code is its level times 16383, rounded.
  for (Bnb4Type bt : {Bnb4Type::kNf4, Bnb4Type::kFp4}) {
    for (size_t c = 0; c < 16; ++c) EXPECT_LE(std::fabs(Bnb4Levels16(bt)[c] - Bnb4Levels(bt)[c] * 16383.0f), 0.5f);
  }
}

void ExpectTableEqualsReference(const DotKernels& k, GgmlType t, const std::vector<uint8_t>& w, int64_t rows, int64_t n,
                                const std::vector<float>& x /* [4][n] */) {
  const DotKernels& ref = DotKernelsFor(Isa::kRef);
  const uint64_t rb = *RowBytes(t, static_cast<uint64_t>(n));
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* row = w.data() + r * rb;
    float want[4], got4[4];
    const std::vector<uint8_t> a = Act(t, x.data(), 4, n);
    const uint64_t stride = ActRowBytes(t, n);
    for (int tk = 0; tk < 4; ++tk) {
      const uint8_t* xt = a.data() + tk * stride;
      want[tk] = ref.For(t)(row, xt, n);
      const float got = k.For(t)(row, xt, n);
      ASSERT_EQ(std::memcmp(&got, &want[tk], 4), 0) << TypeInfo(t).name << " row " << r << ": " << got << " vs " << want[tk];
    }
    ASSERT_NE(k.For4(t), nullptr);
    k.For4(t)(row, a.data(), stride, n, got4);
    for (int tk = 0; tk < 4; ++tk) ASSERT_EQ(std::memcmp(&got4[tk], &want[tk], 4), 0) << TypeInfo(t).name << " dot4 row " << r;
  }
  // The 8-row kernel (where the table has one) on every group of 8 rows, 1 to 3 tokens.
  if (k.ForRows8(t) == nullptr) return;
  const std::vector<uint8_t> a = Act(t, x.data(), 3, n);
  const uint64_t stride = ActRowBytes(t, n);
  for (int64_t r0 = 0; r0 + 8 <= rows; r0 += 8) {
    for (int64_t ntok = 1; ntok <= 3; ++ntok) {
      float y[3 * 8];
      k.ForRows8(t)(w.data() + r0 * rb, rb, n, a.data(), stride, ntok, y, 8);
      for (int64_t tk = 0; tk < ntok; ++tk) {
        for (int r = 0; r < 8; ++r) {
          const float want = ref.For(t)(w.data() + (r0 + r) * rb, a.data() + tk * stride, n);
          ASSERT_EQ(std::memcmp(&y[tk * 8 + r], &want, 4), 0) << TypeInfo(t).name << " rows8 row " << r0 + r << " token " << tk;
        }
      }
    }
  }
}

// A non-finite activation (a broken model) reaches the result as NaN / inf through its block's
// scale, in every table, rather than being coded as a number.
TEST_P(BnbKernelsTest, PairTypesCarryNonFiniteActivations) {
  const DotKernels& k = DotKernelsFor(GetParam());
  std::mt19937 rng(4);
  const int64_t n = 256;
  const std::vector<uint8_t> w = RandomRows(kNF4G64x2, 8, n, rng);
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    std::vector<float> x(n, 0.5f);
    x[70] = bad;
    const std::vector<uint8_t> a = Act(kNF4G64x2, x.data(), 1, n);
    for (int64_t r = 0; r < 8; ++r) {
      EXPECT_FALSE(std::isfinite(k.For(kNF4G64x2)(w.data() + r * *RowBytes(kNF4G64x2, n), a.data(), n))) << r;
    }
  }
}

// The table's int16 activation quantizer writes the reference's bytes: scales over many octaves, a
// zero block, -0, an infinity and NaNs (one unit with two, whose scale keeps the last one met).
TEST_P(BnbKernelsTest, ActivationQuantizerWritesTheReferenceBytes) {
  const DotKernels& k = DotKernelsFor(GetParam());
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> octave(-30.0f, 30.0f);
  const int64_t n = 1024;
  for (int rep = 0; rep < 20; ++rep) {
    std::vector<float> x(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) x[i] = nd(rng) * std::exp2(octave(rng) * (i / 64 % 3 == 0 ? 1.0f : 0.1f));
    std::fill(x.begin() + 64, x.begin() + 128, 0.0f);  // a zero block beside a live one
    x[130] = -0.0f;
    x[300] = rep % 2 ? std::numeric_limits<float>::infinity() : -std::numeric_limits<float>::infinity();
    if (rep % 3 == 0) {
      x[520] = std::numeric_limits<float>::quiet_NaN();
      x[600] = -std::numeric_limits<float>::quiet_NaN();
    }
    const uint64_t bytes = BnbAct16ScalesOffset(n) + 4 * static_cast<uint64_t>(n / 64);
    std::vector<uint8_t> want(bytes, 0xAB), got(bytes, 0xAB);
    QuantizeBnbAct16(x.data(), nullptr, want.data(), n);
    k.quant_bnb16(x.data(), got.data(), n, nullptr);
    ASSERT_EQ(got, want) << "rep " << rep;
  }
}

TEST_P(BnbKernelsTest, EqualTheReferenceOnRandomRows) {
  if (GetParam() == Isa::kRef) GTEST_SKIP() << "the reference itself";
  const DotKernels& k = DotKernelsFor(GetParam());
  std::mt19937 rng(2);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  for (GgmlType t : kTypes) {
    for (int64_t n : {int64_t{64}, int64_t{128}, int64_t{320}, int64_t{384}, int64_t{2048}}) {
      if (!Fits(t, n)) continue;
      const std::vector<uint8_t> w = RandomRows(t, 16, n, rng);
      std::vector<float> x(static_cast<size_t>(4 * n));
      for (auto& v : x) v = nd(rng);
      ExpectTableEqualsReference(k, t, w, 16, n, x);
    }
  }
}

TEST_P(BnbKernelsTest, EqualTheReferenceOnStories5MWeights) {
  LOWBIT_REQUIRE_SHARED();
  const DotKernels& k = DotKernelsFor(GetParam());
  auto g = GgufFile::Open(testing::SharedPath("models/stories5M/stories5M-f32.gguf"));
  ASSERT_TRUE(g.ok()) << g.status().message();
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const char* name : {"blk.0.ffn_gate.weight", "blk.3.ffn_down.weight", "blk.5.attn_q.weight"}) {
    const GgufTensorInfo* ti = g->FindTensor(name);
    ASSERT_NE(ti, nullptr) << name;
    const auto n = static_cast<int64_t>(ti->dims[0]), rows = static_cast<int64_t>(ti->rows());
    const auto* f = reinterpret_cast<const float*>(ti->data);
    for (Bnb4Type bt : {Bnb4Type::kNf4, Bnb4Type::kFp4}) {
      std::vector<uint8_t> packed(static_cast<size_t>((n * rows + 1) / 2));
      std::vector<float> absmax(static_cast<size_t>(BnbBlockCount(n * rows, 64)));
      QuantizeBnb4(bt, f, n * rows, 64, packed.data(), absmax.data());
      const GgmlType t = *Bnb4RowType(bt, n, 64);
      std::vector<uint8_t> w(static_cast<size_t>(rows) * *RowBytes(t, static_cast<uint64_t>(n)));
      PackBnb4Rows(t, packed.data(), absmax, rows, n, 64, w.data());
      std::vector<float> x(static_cast<size_t>(4 * n));
      for (auto& v : x) v = nd(rng);
      if (GetParam() != Isa::kRef) ExpectTableEqualsReference(k, t, w, rows, n, x);
      // MatMul, one token (decode) and 9 tokens (prefill: dot4 then dot), equals the reference per row.
      ThreadPool pool(2);
      MatMulScratch scratch;
      for (int64_t batch : {int64_t{1}, int64_t{9}}) {
        std::vector<float> xb(static_cast<size_t>(batch * n));
        for (auto& v : xb) v = nd(rng);
        std::vector<float> y(static_cast<size_t>(batch * rows));
        MatMulArgs a;
        a.type = t, a.w = w.data(), a.rows = rows, a.cols = n, a.x = xb.data(), a.batch = batch, a.y = y.data();
        MatMul(k, a, &pool, &scratch);
        const DotKernels& ref = DotKernelsFor(Isa::kRef);
        const uint64_t rb = *RowBytes(t, static_cast<uint64_t>(n));
        const std::vector<uint8_t> ab = Act(t, xb.data(), batch, n);
        for (int64_t tk = 0; tk < batch; ++tk) {
          for (int64_t r = 0; r < rows; ++r) {
            const float want = ref.For(t)(w.data() + r * rb, ab.data() + tk * ActRowBytes(t, n), n);
            ASSERT_EQ(std::memcmp(&y[tk * rows + r], &want, 4), 0) << name << " token " << tk << " row " << r;
          }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(EveryIsaThisCpuRuns, BnbKernelsTest, ::testing::ValuesIn(SupportedIsas()),
                         [](const auto& p) { return std::string(IsaName(p.param)); });

}  // namespace
}  // namespace lowbit

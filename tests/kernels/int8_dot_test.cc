// LLM.int8 kernels (I8R32 / I8R256 weights, per-token int8 activations with float outliers;
// kernels/dot_int8.h):
//  - the activation row: exactly the columns with |x| >= T are listed (in order, with their values),
//    their codes are 0, the others are round(x * 127 / absmax) over the non-outliers; T = 0 lists none;
//  - the reference dot is the float dot of x with the dequantized row within the int8 rounding of the
//    non-outlier columns, and the outlier columns are computed exactly in float (an input whose only
//    non-zero columns are outliers gives the in-order float sum of x * (q * SCB / 127));
//  - every ISA table's dot and 4-token dot equal the reference bit for bit (random rows, outliers
//    present and absent, threshold 0, and stories5M's weights quantized by LLM.int8's quantizer);
//  - MatMul, decode and prefill, equals the reference per row, and a token's results are the same
//    alone and in a batch whose other tokens have other outliers.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "lowbit/base/thread_pool.h"
#include "lowbit/formats/gguf_reader.h"
#include "lowbit/kernels/dot.h"
#include "lowbit/kernels/dot_int8.h"
#include "lowbit/kernels/matvec.h"
#include "lowbit/numeric/bnb.h"
#include "lowbit/numeric/dequant.h"
#include "lowbit/quant/bnb_quant.h"
#include "test_data.h"

namespace lowbit {
namespace {

using enum GgmlType;

// Rows of `rows` x n with codes in [-127, 127] and a random SCB per row.
std::vector<uint8_t> RandomRows(GgmlType t, int64_t rows, int64_t n, std::mt19937& rng) {
  std::uniform_int_distribution<int> code(-127, 127);
  std::uniform_real_distribution<float> octave(-6.0f, 3.0f);
  std::vector<int8_t> q(static_cast<size_t>(rows * n));
  for (auto& v : q) v = static_cast<int8_t>(code(rng));
  std::vector<float> scb(static_cast<size_t>(rows));
  for (auto& s : scb) s = std::exp2(octave(rng));
  std::vector<uint8_t> w(static_cast<size_t>(rows) * *RowBytes(t, static_cast<uint64_t>(n)));
  PackInt8Rows(t, q.data(), scb, rows, n, w.data());
  return w;
}

// Normal activations with a few large columns (the outliers LLM.int8 is about), scaled by `scale`.
std::vector<float> Activations(int64_t n, int64_t tokens, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> nd(0.0f, scale);
  std::uniform_int_distribution<int64_t> col(0, n - 1);
  std::vector<float> x(static_cast<size_t>(n * tokens));
  for (auto& v : x) v = nd(rng);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int k = 0; k < 3; ++k) x[static_cast<size_t>(t * n + col(rng))] = (k % 2 == 0 ? 1.0f : -1.0f) * scale * (8.0f + k * 5.0f);
  }
  return x;
}

Int8ActHeader Header(const std::vector<uint8_t>& act, int64_t n) {
  Int8ActHeader h;
  std::memcpy(&h, act.data() + Int8ActHeaderOffset(n), sizeof(h));
  return h;
}

std::vector<uint8_t> Quantized(GgmlType t, const float* x, int64_t n, float threshold) {
  std::vector<uint8_t> act(ActRowBytes(t, n));
  QuantizeActivations(DotKernelsFor(Isa::kRef), t, x, act.data(), n, threshold);
  return act;
}

TEST(Int8Activations, ListExactlyTheOutliersAndQuantizeTheRest) {
  std::mt19937 rng(1);
  const int64_t n = 288;
  const std::vector<float> x = Activations(n, 1, rng);
  for (float threshold : {0.0f, 6.0f, 12.0f, 1e30f}) {
    const std::vector<uint8_t> act = Quantized(kI8R32, x.data(), n, threshold);
    const Int8ActHeader h = Header(act, n);
    std::vector<int32_t> want_cols;
    float amax = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (threshold > 0 && std::fabs(x[i]) >= threshold) want_cols.push_back(static_cast<int32_t>(i));
      else amax = std::max(amax, std::fabs(x[i]));
    }
    ASSERT_EQ(h.count, static_cast<int32_t>(want_cols.size())) << threshold;
    EXPECT_EQ(h.scale, amax / 127.0f);
    if (threshold == 6.0f) {
      EXPECT_EQ(h.count, 3);  // the three planted columns (8, 13, 18 sigma)
    }
    const uint8_t* cols = act.data() + Int8ActHeaderOffset(n) + sizeof(Int8ActHeader);
    for (size_t k = 0; k < want_cols.size(); ++k) {
      int32_t c;
      float v;
      std::memcpy(&c, cols + 4 * k, 4);
      std::memcpy(&v, cols + 4 * n + 4 * k, 4);
      EXPECT_EQ(c, want_cols[k]);
      EXPECT_EQ(v, x[static_cast<size_t>(c)]);
    }
    const auto* codes = reinterpret_cast<const int8_t*>(act.data());
    size_t k = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (k < want_cols.size() && want_cols[k] == i) {
        EXPECT_EQ(codes[i], 0);
        ++k;
        continue;
      }
      EXPECT_EQ(codes[i], static_cast<int8_t>(std::nearbyint(x[i] * (127.0f / amax)))) << i;
    }
  }
}

// The reference dot against the float dot of the dequantized row: within the int8 rounding of the
// non-outlier activations (half a step each) plus float rounding.
TEST(Int8Reference, IsTheDequantizedDotWithinTheActivationRounding) {
  const DotKernels& ref = DotKernelsFor(Isa::kRef);
  std::mt19937 rng(2);
  for (GgmlType t : {kI8R32, kI8R256}) {
    const int64_t n = 768;
    const std::vector<uint8_t> w = RandomRows(t, 8, n, rng);
    const std::vector<float> x = Activations(n, 1, rng);
    std::vector<float> deq(static_cast<size_t>(n));
    for (float threshold : {0.0f, 6.0f}) {
      const std::vector<uint8_t> act = Quantized(t, x.data(), n, threshold);
      const float step = Header(act, n).scale;
      for (int64_t r = 0; r < 8; ++r) {
        const uint8_t* row = w.data() + r * *RowBytes(t, static_cast<uint64_t>(n));
        ASSERT_TRUE(DequantizeRow(t, row, deq.data(), n));
        double exact = 0, bound = 0;
        for (int64_t i = 0; i < n; ++i) {
          exact += static_cast<double>(deq[i]) * x[i];
          const bool outlier = threshold > 0 && std::fabs(x[i]) >= threshold;
          bound += outlier ? 0.0 : std::fabs(deq[i]) * (0.5 * step) * 1.0001;
          bound += std::fabs(static_cast<double>(deq[i]) * x[i]) * 1e-6;
        }
        const float got = ref.For(t)(row, act.data(), n);
        EXPECT_NEAR(got, exact, bound) << TypeInfo(t).name << " T " << threshold << " row " << r;
      }
    }
  }
}

TEST(Int8Reference, OutlierColumnsAreComputedExactlyInFloat) {
  const DotKernels& ref = DotKernelsFor(Isa::kRef);
  std::mt19937 rng(3);
  for (GgmlType t : {kI8R32, kI8R256}) {
    const int64_t n = 512;
    const std::vector<uint8_t> w = RandomRows(t, 4, n, rng);
    // Only outliers are non-zero: the int8 part is 0, the result is the outliers' float sum.
    std::vector<float> x(static_cast<size_t>(n), 0.0f);
    const int64_t cols[] = {3, 40, 41, 300, 511};
    std::uniform_real_distribution<float> mag(6.0f, 100.0f);
    for (int64_t c : cols) x[static_cast<size_t>(c)] = (c % 2 ? -1.0f : 1.0f) * mag(rng);
    const std::vector<uint8_t> act = Quantized(t, x.data(), n, 6.0f);
    ASSERT_EQ(Header(act, n).count, 5);
    std::vector<float> deq(static_cast<size_t>(n));
    for (int64_t r = 0; r < 4; ++r) {
      const uint8_t* row = w.data() + r * *RowBytes(t, static_cast<uint64_t>(n));
      ASSERT_TRUE(DequantizeRow(t, row, deq.data(), n));
      // The contract's order: four chains (outlier k into chain k % 4), then (p0 + p1) + (p2 + p3).
      float p[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      for (size_t k = 0; k < std::size(cols); ++k) p[k % 4] = p[k % 4] + x[static_cast<size_t>(cols[k])] * deq[static_cast<size_t>(cols[k])];
      const float want = 0.0f + ((p[0] + p[1]) + (p[2] + p[3]));  // the int8 part (0) plus the outliers
      for (const DotKernels* k : {&ref, &ActiveDotKernels()}) {
        const float got = k->For(t)(row, act.data(), n);
        EXPECT_EQ(std::memcmp(&got, &want, 4), 0) << TypeInfo(t).name << " row " << r << ": " << got << " vs " << want;
      }
    }
  }
}

void ExpectTableEqualsReference(const DotKernels& k, GgmlType t, const std::vector<uint8_t>& w, int64_t rows, int64_t n,
                                const std::vector<float>& x /* [4][n] */, float threshold) {
  const DotKernels& ref = DotKernelsFor(Isa::kRef);
  const uint64_t rb = *RowBytes(t, static_cast<uint64_t>(n)), ab = ActRowBytes(t, n);
  std::vector<uint8_t> act(4 * ab);
  for (int tk = 0; tk < 4; ++tk) QuantizeActivations(k, t, x.data() + tk * n, act.data() + tk * ab, n, threshold);
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* row = w.data() + r * rb;
    float want[4], got4[4];
    for (int tk = 0; tk < 4; ++tk) {
      want[tk] = ref.For(t)(row, act.data() + tk * ab, n);
      const float got = k.For(t)(row, act.data() + tk * ab, n);
      ASSERT_EQ(std::memcmp(&got, &want[tk], 4), 0) << TypeInfo(t).name << " n " << n << " T " << threshold << " row " << r << ": "
                                                     << got << " vs " << want[tk];
    }
    ASSERT_NE(k.For4(t), nullptr);
    k.For4(t)(row, act.data(), ab, n, got4);
    for (int tk = 0; tk < 4; ++tk) ASSERT_EQ(std::memcmp(&got4[tk], &want[tk], 4), 0) << TypeInfo(t).name << " dot4 row " << r;
  }
  // The 8-row kernel on 1..4 tokens at once (each pass size of the 512-bit form), every lane the reference's.
  if (k.ForRows8(t) == nullptr) return;
  for (int64_t ntok = 1; ntok <= 4; ++ntok) {
    for (int64_t r0 = 0; r0 + 8 <= rows; r0 += 8) {
      float y[4][8];
      k.ForRows8(t)(w.data() + r0 * rb, rb, n, act.data(), ab, ntok, &y[0][0], 8);
      for (int64_t tk = 0; tk < ntok; ++tk) {
        for (int r = 0; r < 8; ++r) {
          const float want = ref.For(t)(w.data() + (r0 + r) * rb, act.data() + tk * ab, n);
          ASSERT_EQ(std::memcmp(&y[tk][r], &want, 4), 0) << TypeInfo(t).name << " rows8 n " << n << " T " << threshold << " tokens " << ntok
                                                         << " token " << tk << " row " << r0 + r;
        }
      }
    }
  }
}

class Int8KernelsTest : public ::testing::TestWithParam<Isa> {};

TEST_P(Int8KernelsTest, EqualTheReferenceOnRandomRows) {
  if (GetParam() == Isa::kRef) GTEST_SKIP() << "the reference itself";
  const DotKernels& k = DotKernelsFor(GetParam());
  std::mt19937 rng(4);
  for (GgmlType t : {kI8R32, kI8R256}) {
    for (int64_t n : {int64_t{256}, int64_t{288}, int64_t{352}, int64_t{768}, int64_t{2048}}) {
      if (n % TypeInfo(t).block_size != 0) continue;
      const std::vector<uint8_t> w = RandomRows(t, 16, n, rng);
      const std::vector<float> x = Activations(n, 4, rng, 1.5f);
      for (float threshold : {0.0f, 6.0f, 1e30f}) ExpectTableEqualsReference(k, t, w, 16, n, x, threshold);
    }
  }
}

// stories5M's weights through LLM.int8's quantizer (QuantizeInt8Rows), activations with outliers.
TEST_P(Int8KernelsTest, EqualTheReferenceOnStories5MWeightsDecodeAndPrefill) {
  LOWBIT_REQUIRE_SHARED();
  const DotKernels& k = DotKernelsFor(GetParam());
  const DotKernels& ref = DotKernelsFor(Isa::kRef);
  auto g = GgufFile::Open(testing::SharedPath("models/stories5M/stories5M-f32.gguf"));
  ASSERT_TRUE(g.ok()) << g.status().message();
  std::mt19937 rng(5);
  ThreadPool pool(2);
  MatMulScratch scratch;
  for (const char* name : {"blk.0.ffn_gate.weight", "blk.3.ffn_down.weight", "blk.5.attn_q.weight"}) {
    const GgufTensorInfo* ti = g->FindTensor(name);
    ASSERT_NE(ti, nullptr) << name;
    const auto n = static_cast<int64_t>(ti->dims[0]), rows = static_cast<int64_t>(ti->rows());
    std::vector<int8_t> q(static_cast<size_t>(n * rows));
    const std::vector<float> scb = QuantizeInt8Rows(reinterpret_cast<const float*>(ti->data), rows, n, q.data());
    const GgmlType t = *Int8RowType(n);
    std::vector<uint8_t> w(static_cast<size_t>(rows) * *RowBytes(t, static_cast<uint64_t>(n)));
    PackInt8Rows(t, q.data(), scb, rows, n, w.data());
    if (GetParam() != Isa::kRef) ExpectTableEqualsReference(k, t, w, rows, n, Activations(n, 4, rng), 6.0f);
    // MatMul: one token (decode) and 9 (prefill: dot4 then dot), each row the reference's; with
    // batch_invariant a token's results equal those of the token alone.
    const uint64_t rb = *RowBytes(t, static_cast<uint64_t>(n));
    for (float threshold : {0.0f, 6.0f}) {
      for (int64_t batch : {int64_t{1}, int64_t{9}}) {
        const std::vector<float> xb = Activations(n, batch, rng);
        std::vector<float> y(static_cast<size_t>(batch * rows));
        MatMulArgs a;
        a.type = t, a.w = w.data(), a.rows = rows, a.cols = n, a.x = xb.data(), a.batch = batch, a.y = y.data();
        a.outlier_threshold = threshold, a.batch_invariant = true;
        MatMul(k, a, &pool, &scratch);
        for (int64_t tk = 0; tk < batch; ++tk) {
          const std::vector<uint8_t> act = Quantized(t, xb.data() + tk * n, n, threshold);
          std::vector<float> alone(static_cast<size_t>(rows));
          MatMulArgs one = a;
          one.x = xb.data() + tk * n, one.batch = 1, one.y = alone.data();
          MatMul(k, one, &pool, &scratch);
          for (int64_t r = 0; r < rows; ++r) {
            const float want = ref.For(t)(w.data() + r * rb, act.data(), n);
            ASSERT_EQ(std::memcmp(&y[tk * rows + r], &want, 4), 0) << name << " T " << threshold << " token " << tk << " row " << r;
            ASSERT_EQ(std::memcmp(&alone[r], &want, 4), 0) << name << " alone, token " << tk << " row " << r;
          }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(EveryIsaThisCpuRuns, Int8KernelsTest, ::testing::ValuesIn(SupportedIsas()),
                         [](const auto& p) { return std::string(IsaName(p.param)); });

}  // namespace
}  // namespace lowbit

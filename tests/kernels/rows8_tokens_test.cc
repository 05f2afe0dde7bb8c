// The 8-row decode kernels (DotKernels::rows8) on several tokens at once: each block's codes are
// decoded once for up to 4 tokens, and each token's float terms are added as the one-token kernel
// adds them, so a T-token call gives every token, bit for bit, what a call on that token alone gives
// (and the reference dot, the rows8 contract), for T = 1..9 (passes of 4 and the 1-3 left), on every
// ISA this CPU runs, on random weights and on stories5M's weights quantized. The batch-invariant
// MatMul (the server's steps) gives each token of a T-token product the one-token product's bits.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "lowbit/base/thread_pool.h"
#include "lowbit/formats/gguf_reader.h"
#include "lowbit/kernels/dot.h"
#include "lowbit/kernels/matvec.h"
#include "lowbit/numeric/dequant.h"
#include "lowbit/quant/quantize.h"
#include "test_data.h"

namespace lowbit {
namespace {

constexpr int64_t kMaxTokens = 9;

class Rows8TokensTest : public ::testing::TestWithParam<Isa> {};

// 8 rows of weights quantized to t (n columns, RowBytes apart) and kMaxTokens activation rows.
struct Case {
  GgmlType t;
  int64_t n;
  std::vector<uint8_t> w, act;
  uint64_t rb, ab;
};

Case MakeCase(GgmlType t, const float* w, const float* x, int64_t n) {
  Case c{t, n, {}, {}, *RowBytes(t, static_cast<uint64_t>(n)), ActRowBytes(t, n)};
  c.w.resize(8 * c.rb);
  c.act.resize(kMaxTokens * c.ab);
  for (int r = 0; r < 8; ++r) FromFloatFor(t)(w + r * n, c.w.data() + r * c.rb, n, nullptr);
  for (int64_t b = 0; b < kMaxTokens; ++b) QuantizeActivations(t, x + b * n, c.act.data() + b * c.ab, n);
  return c;
}

// rows8 on tokens [0, T) for every T against rows8 on each token alone and the reference dot, bit for
// bit; the outputs go y_stride = 11 apart (past the 8 rows) to check that each token's row lands in
// its place and nothing else is written.
void CheckTokens(const DotKernels& k, const Case& c, const std::string& what) {
  const Rows8Fn f = k.ForRows8(c.t);
  const DotKernels& ref = DotKernelsFor(Isa::kRef);
  constexpr int64_t kStride = 11;
  std::vector<float> one(kMaxTokens * 8);
  for (int64_t b = 0; b < kMaxTokens; ++b) f(c.w.data(), c.rb, c.n, c.act.data() + b * c.ab, c.ab, 1, one.data() + b * 8, 8);
  for (int64_t b = 0; b < kMaxTokens; ++b) {
    for (int r = 0; r < 8; ++r) {
      const float want = ref.For(c.t)(c.w.data() + r * c.rb, c.act.data() + b * c.ab, c.n);
      ASSERT_EQ(std::memcmp(&one[b * 8 + r], &want, 4), 0) << what << " one token " << b << " row " << r;
    }
  }
  for (int64_t T = 1; T <= kMaxTokens; ++T) {
    std::vector<float> y(T * kStride, -7.0f);
    f(c.w.data(), c.rb, c.n, c.act.data(), c.ab, T, y.data(), kStride);
    for (int64_t b = 0; b < T; ++b) {
      for (int r = 0; r < 8; ++r) {
        ASSERT_EQ(std::memcmp(&y[b * kStride + r], &one[b * 8 + r], 4), 0) << what << " T " << T << " token " << b << " row " << r;
      }
      for (int r = 8; r < kStride; ++r) ASSERT_EQ(y[b * kStride + r], -7.0f) << what << " T " << T << " wrote past row 8";
    }
  }
}

std::vector<GgmlType> Rows8Types(const DotKernels& k) {
  std::vector<GgmlType> out;
  for (const GgmlTypeInfo& t : AllGgmlTypes()) {
    if (k.ForRows8(t.type) != nullptr && FromFloatFor(t.type) != nullptr) out.push_back(t.type);
  }
  return out;
}

TEST_P(Rows8TokensTest, EveryTokenCountEqualsOneTokenBitForBitOnRandomData) {
  const DotKernels& k = DotKernelsFor(GetParam());
  std::mt19937 rng(22);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  int tested = 0;
  for (GgmlType t : Rows8Types(k)) {
    // An odd number of blocks too, for the 32-element types (the 512-bit kernels take two blocks a
    // step and the last one alone); for the float types a length that is not a multiple of 8 (the
    // tail after the 8-wide steps).
    const int64_t block = TypeInfo(t).block_size;
    for (int64_t n : {int64_t{1024}, int64_t{block == 32 ? 1056 : block == 1 ? 1029 : 1280}}) {
      std::vector<float> w(8 * n), x(kMaxTokens * n);
      for (auto& v : w) v = nd(rng) * 0.02f;
      for (auto& v : x) v = nd(rng);
      for (int64_t i = 0; i < kMaxTokens * n; i += 41) x[i] *= -30.0f;  // outliers: codes at +-127
      CheckTokens(k, MakeCase(t, w.data(), x.data(), n), std::string(TypeInfo(t).name) + " random, " + std::to_string(n) + " columns");
    }
    ++tested;
  }
  if (GetParam() != Isa::kRef) {
    // F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, Q4_K, Q5_K, Q6_K; Q2_K and Q3_K with VNNI.
    EXPECT_EQ(tested, GetParam() == Isa::kAvx512 ? 14 : 12);
  }
}

// stories5M's FFN down projections (768 columns: whole super-blocks) as weights, quantized, and rows
// of another layer's as activations.
TEST_P(Rows8TokensTest, EveryTokenCountEqualsOneTokenBitForBitOnStories5MWeights) {
  LOWBIT_REQUIRE_SHARED();
  const DotKernels& k = DotKernelsFor(GetParam());
  auto g = GgufFile::Open(testing::SharedPath("models/stories5M/stories5M-f32.gguf"));
  ASSERT_TRUE(g.ok()) << g.status().message();
  const GgufTensorInfo* wt = g->FindTensor("blk.2.ffn_down.weight");
  const GgufTensorInfo* xt = g->FindTensor("blk.5.ffn_down.weight");
  ASSERT_NE(wt, nullptr);
  ASSERT_NE(xt, nullptr);
  const auto n = static_cast<int64_t>(wt->dims[0]);
  ASSERT_EQ(n % 256, 0);
  ASSERT_GE(static_cast<int64_t>(wt->rows()), 40);
  const auto* w = reinterpret_cast<const float*>(wt->data);
  std::vector<float> x(reinterpret_cast<const float*>(xt->data), reinterpret_cast<const float*>(xt->data) + kMaxTokens * n);
  for (auto& v : x) v *= 50.0f;  // the scale of a hidden state
  for (GgmlType t : Rows8Types(k)) {
    for (int64_t r0 : {int64_t{0}, int64_t{32}}) CheckTokens(k, MakeCase(t, w + r0 * n, x.data(), n), std::string(TypeInfo(t).name) + " stories5M");
  }
}

INSTANTIATE_TEST_SUITE_P(EveryIsaThisCpuRuns, Rows8TokensTest, ::testing::ValuesIn(SupportedIsas()),
                         [](const auto& p) { return std::string(IsaName(p.param)); });

// The dispatch: a batch-invariant MatMul of T tokens (rows8 below 8, the GEMM or rows8 from 8 on;
// 100 rows: 12 groups of 8, then 4 on the row kernel) gives each token what a 1-token product gives,
// threaded or not.
TEST(Rows8Tokens, BatchInvariantMatMulOfTTokensEqualsOneTokenProducts) {
  std::mt19937 rng(23);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  ThreadPool pool(2);
  MatMulScratch scratch;
  const int64_t rows = 100, cols = 512;
  for (GgmlType t : {GgmlType::kQ4_K, GgmlType::kQ6_K, GgmlType::kQ5_K, GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kF32, GgmlType::kF16}) {
    std::vector<float> wf(rows * cols), x(kMaxTokens * cols);
    for (auto& v : wf) v = nd(rng) * 0.02f;
    for (auto& v : x) v = nd(rng);
    const uint64_t rb = *RowBytes(t, cols);
    std::vector<uint8_t> w(rows * rb);
    for (int64_t r = 0; r < rows; ++r) FromFloatFor(t)(wf.data() + r * cols, w.data() + r * rb, cols, nullptr);
    std::vector<float> one(kMaxTokens * rows);
    for (int64_t b = 0; b < kMaxTokens; ++b) {
      MatMul(MatMulArgs{.type = t, .w = w.data(), .rows = rows, .cols = cols, .x = x.data() + b * cols, .batch = 1,
                        .y = one.data() + b * rows, .batch_invariant = true},
             nullptr, &scratch);
    }
    for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
      for (int64_t T = 1; T <= kMaxTokens; ++T) {
        std::vector<float> y(T * rows);
        MatMul(MatMulArgs{.type = t, .w = w.data(), .rows = rows, .cols = cols, .x = x.data(), .batch = T, .y = y.data(),
                          .batch_invariant = true},
               p, &scratch);
        ASSERT_EQ(std::memcmp(y.data(), one.data(), y.size() * 4), 0) << TypeInfo(t).name << " T " << T;
      }
    }
  }
}

}  // namespace
}  // namespace lowbit

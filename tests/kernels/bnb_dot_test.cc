// bitsandbytes' 4-bit types' kernels (NF4G32 .. FP4G64 against F32 activations):
//  - the reference dot equals the exact sum of the dequantized weights times x within float rounding;
//  - every ISA table's dot and 4-token dot equal the reference bit for bit, on random rows (every
//    code, scales over many octaves) and on stories5M's weights quantized to NF4 / FP4;
//  - MatMul over such a matrix gives the reference's row results for decode and prefill.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "lowbit/base/thread_pool.h"
#include "lowbit/formats/gguf_reader.h"
#include "lowbit/kernels/dot.h"
#include "lowbit/kernels/matvec.h"
#include "lowbit/numeric/bnb.h"
#include "lowbit/numeric/dequant.h"
#include "lowbit/quant/bnb_quant.h"
#include "test_data.h"

namespace lowbit {
namespace {

using enum GgmlType;
const GgmlType kTypes[] = {kNF4G32, kNF4G64, kFP4G32, kFP4G64};

std::vector<uint8_t> RandomRows(GgmlType t, int64_t rows, int64_t n, std::mt19937& rng) {
  const uint64_t bb = TypeInfo(t).block_bytes;
  std::vector<uint8_t> w(static_cast<size_t>(rows) * *RowBytes(t, static_cast<uint64_t>(n)));
  std::uniform_real_distribution<float> octave(-12.0f, 4.0f);
  for (uint64_t b = 0; b < w.size() / bb; ++b) {
    const float d = std::exp2(octave(rng));
    std::memcpy(w.data() + b * bb, &d, 4);
    for (uint64_t i = 4; i < bb; ++i) w[b * bb + i] = static_cast<uint8_t>(rng());
  }
  return w;
}

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
    double exact = 0, mag = 0;
    for (int64_t i = 0; i < n; ++i) exact += static_cast<double>(deq[i]) * x[i], mag += std::fabs(static_cast<double>(deq[i]) * x[i]);
    const float got = ref.For(t)(w.data(), reinterpret_cast<const uint8_t*>(x.data()), n);
    EXPECT_NEAR(got, exact, mag * 1e-6) << TypeInfo(t).name;
  }
}

void ExpectTableEqualsReference(const DotKernels& k, GgmlType t, const std::vector<uint8_t>& w, int64_t rows, int64_t n,
                                const std::vector<float>& x /* [4][n] */) {
  const DotKernels& ref = DotKernelsFor(Isa::kRef);
  const uint64_t rb = *RowBytes(t, static_cast<uint64_t>(n));
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* row = w.data() + r * rb;
    float want[4], got4[4];
    for (int tk = 0; tk < 4; ++tk) {
      const auto* xt = reinterpret_cast<const uint8_t*>(x.data() + tk * n);
      want[tk] = ref.For(t)(row, xt, n);
      const float got = k.For(t)(row, xt, n);
      ASSERT_EQ(std::memcmp(&got, &want[tk], 4), 0) << TypeInfo(t).name << " row " << r << ": " << got << " vs " << want[tk];
    }
    ASSERT_NE(k.For4(t), nullptr);
    k.For4(t)(row, reinterpret_cast<const uint8_t*>(x.data()), static_cast<uint64_t>(n) * 4, n, got4);
    for (int tk = 0; tk < 4; ++tk) ASSERT_EQ(std::memcmp(&got4[tk], &want[tk], 4), 0) << TypeInfo(t).name << " dot4 row " << r;
  }
}

TEST_P(BnbKernelsTest, EqualTheReferenceOnRandomRows) {
  if (GetParam() == Isa::kRef) GTEST_SKIP() << "the reference itself";
  const DotKernels& k = DotKernelsFor(GetParam());
  std::mt19937 rng(2);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  for (GgmlType t : kTypes) {
    for (int64_t n : {int64_t{64}, int64_t{320}, int64_t{2048}}) {
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
        for (int64_t tk = 0; tk < batch; ++tk) {
          for (int64_t r = 0; r < rows; ++r) {
            const float want = ref.For(t)(w.data() + r * rb, reinterpret_cast<const uint8_t*>(xb.data() + tk * n), n);
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

// Every row dot product of every ISA table the CPU runs agrees with the reference (dequantize,
// then dot) within 1e-5 of sum |w x|, for every type the reference covers, on random rows.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "lowbit/kernels/dot.h"
#include "lowbit/numeric/dequant.h"
#include "lowbit/quant/quantize.h"

namespace lowbit {
namespace {

class DotKernelsTest : public ::testing::TestWithParam<Isa> {};

TEST_P(DotKernelsTest, MatchReferenceOnEveryType) {
  const DotKernels& k = DotKernelsFor(GetParam());
  const DotKernels& ref = DotKernelsFor(Isa::kRef);
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  int types = 0;
  for (const GgmlTypeInfo& t : AllGgmlTypes()) {
    if (ref.For(t.type) == nullptr || FromFloatFor(t.type) == nullptr) continue;
    ASSERT_NE(k.For(t.type), nullptr) << t.name;
    for (int64_t n : {int64_t{256}, int64_t{768}, int64_t{4096}}) {
      if (n % t.block_size) continue;
      std::vector<float> w(n), x(n), deq(n);
      for (auto& v : w) v = nd(rng) * 0.02f;
      for (auto& v : x) v = nd(rng);
      std::vector<uint8_t> row(*RowBytes(t.type, n));
      FromFloatFor(t.type)(w.data(), row.data(), n, nullptr);
      ToFloatFor(t.type)(row.data(), deq.data(), n);
      double mag = 0;
      for (int64_t i = 0; i < n; ++i) mag += std::fabs(static_cast<double>(deq[i]) * x[i]);
      const float want = ref.For(t.type)(row.data(), x.data(), n);
      const float got = k.For(t.type)(row.data(), x.data(), n);
      EXPECT_NEAR(got, want, 1e-5 * mag + 1e-7) << t.name << " n=" << n;
    }
    ++types;
  }
  EXPECT_GE(types, 16);
}

INSTANTIATE_TEST_SUITE_P(EveryIsaThisCpuRuns, DotKernelsTest, ::testing::ValuesIn(SupportedIsas()),
                         [](const auto& p) { return std::string(IsaName(p.param)); });

}  // namespace
}  // namespace lowbit

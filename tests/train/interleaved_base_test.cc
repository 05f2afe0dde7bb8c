// Training on a frozen base held in memory, whose matrices of the interleaving types are interleaved
// (numeric/interleave.h, testing::kInterleavingTypes): its F32 copies (FrozenBase) and the graph's forward equal those of the same
// file mapped (the file's layout) bit for bit, so an adapter trained on either is the same.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "lowbit/kernels/dot.h"
#include "lowbit/model/llama.h"
#include "lowbit/train/graph.h"
#include "lowbit/train/weights.h"
#include "model/synth_tiny.h"

namespace lowbit::train {
namespace {

class InterleavedBase : public ::testing::TestWithParam<GgmlType> {};

TEST_P(InterleavedBase, FrozenWeightsAndForwardEqualTheMappedFiles) {
  const GgmlType t = GetParam();
  const testing::BothResidencies both("tiny", t);
  ASSERT_TRUE(both.status.ok()) << both.status.message();
  const LlamaModel *ma = &*both.mapped, *mb = &*both.read;
  EXPECT_EQ(mb->layers[0].wq.type, InterleavedFor(ActiveDotKernels(), t).value_or(t));
  FrozenBase fa(*ma, nullptr), fb(*mb, nullptr);
  const Linear& a = fa.weights().layers[0].down;
  const Linear& b = fb.weights().layers[0].down;
  ASSERT_EQ(a.rows, b.rows);
  ASSERT_EQ(a.cols, b.cols);
  EXPECT_EQ(std::memcmp(a.w, b.w, static_cast<size_t>(a.rows * a.cols) * sizeof(float)), 0);
  constexpr int64_t kT = 12;
  Graph ga(ma->config(), 1, kT, nullptr), gb(mb->config(), 1, kT, nullptr);
  std::vector<int32_t> tokens(kT);
  for (int64_t i = 0; i < kT; ++i) tokens[i] = static_cast<int32_t>((37 * i + 5) % ma->config().n_vocab);
  const float* la = ga.Forward(fa.weights(), tokens.data());
  const float* lb = gb.Forward(fb.weights(), tokens.data());
  const size_t n = static_cast<size_t>(kT * ma->config().n_vocab);
  EXPECT_EQ(std::vector<float>(lb, lb + n), std::vector<float>(la, la + n));
}

INSTANTIATE_TEST_SUITE_P(InterleavedTypes, InterleavedBase, ::testing::ValuesIn(testing::kInterleavingTypes),
                         [](const auto& p) { return std::string(TypeInfo(p.param).name); });

}  // namespace
}  // namespace lowbit::train

// Round-to-nearest quantizers reproduce ggml's bytes exactly (../shared/golden): Q4_0, Q4_1, Q5_0,
// Q5_1, Q8_0, F16, BF16 weights and the Q8_K activation quantizer. Q8_1 has no golden tensor; its
// block is checked against its definition.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "lowbit/formats/gguf_reader.h"
#include "lowbit/numeric/blocks.h"
#include "lowbit/numeric/half.h"
#include "lowbit/quant/quantize.h"
#include "lowbit/quant/rtn.h"
#include "test_data.h"

namespace lowbit {
namespace {

TEST(Rtn, SameBytesAsGgml) {
  LOWBIT_REQUIRE_SHARED();
  auto g = GgufFile::Open(testing::SharedPath("golden/quant-golden.gguf"));
  ASSERT_TRUE(g.ok()) << g.status().message();
  int checked = 0;
  for (const char* src : {"gauss", "outliers", "uniform", "weights", "edge"}) {
    const GgufTensorInfo* in = g->FindTensor(std::string(src) + ".input");
    const auto* x = reinterpret_cast<const float*>(in->data);
    for (const char* tname : {"f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q8_K"}) {
      const GgufTensorInfo* want = g->FindTensor(std::string(src) + "." + tname + ".q");
      if (want == nullptr) continue;
      SCOPED_TRACE(want->name);
      std::vector<uint8_t> got(want->n_bytes);
      if (want->type == GgmlType::kQ8_K) {
        QuantizeQ8_KRef(x, got.data(), static_cast<int64_t>(in->n_elements));
      } else {
        FromFloatFor(want->type)(x, got.data(), static_cast<int64_t>(in->n_elements), nullptr);
      }
      for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want->data[i]) << "byte " << i;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 5 * 8);  // every source has cols that are a multiple of 256, so Q8_K too
}

TEST(Rtn, Q8_1MatchesItsDefinition) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(64);
  for (float& v : x) v = nd(rng);
  BlockQ8_1 b[2];
  QuantizeQ8_1Ref(x.data(), b, 64);
  for (int k = 0; k < 2; ++k) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[32 * k + j]));
    const float d = amax / 127.0f;
    EXPECT_EQ(b[k].d, Fp32ToFp16(d));
    int sum = 0;
    for (int j = 0; j < 32; ++j) {
      EXPECT_EQ(b[k].qs[j], static_cast<int8_t>(std::round(x[32 * k + j] / d)));
      sum += b[k].qs[j];
    }
    EXPECT_EQ(b[k].s, Fp32ToFp16(static_cast<float>(sum) * d));
  }
}

}  // namespace
}  // namespace lowbit

// Quantization quality against ggml: for every golden source and type, and for every weight
// tensor of stories5M that llama.cpp quantized to the same type, lowbit's dequant(quantize(x))
// error is no worse than ggml's, and on average at least 5% lower for Q2_K..Q5_K and IQ4_XS.
// Errors are RMSE, importance-weighted (per column) when an importance matrix is used.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <map>
#include <vector>

#include "lowbit/formats/gguf_reader.h"
#include "lowbit/numeric/dequant.h"
#include "lowbit/quant/error_stats.h"
#include "lowbit/quant/quantize.h"
#include "test_data.h"

namespace lowbit {
namespace {

// Error of ours (quantize -> dequantize `x`) for `rows` rows of `cols`.
double OurRmse(GgmlType type, const float* x, int64_t rows, int64_t cols, const float* imatrix) {
  const uint64_t row_bytes = *RowBytes(type, cols);
  std::vector<uint8_t> q(row_bytes * rows);
  std::vector<float> y(rows * cols);
  ErrorStats st;
  for (int64_t r = 0; r < rows; ++r) {
    FromFloatFor(type)(x + r * cols, q.data() + r * row_bytes, cols, imatrix);
    ToFloatFor(type)(q.data() + r * row_bytes, y.data() + r * cols, cols);
    st.Add(x + r * cols, y.data() + r * cols, cols, imatrix);
  }
  return st.rmse();
}

double TheirRmse(const float* x, const float* y, int64_t rows, int64_t cols, const float* imatrix) {
  ErrorStats st;
  for (int64_t r = 0; r < rows; ++r) st.Add(x + r * cols, y + r * cols, cols, imatrix);
  return st.rmse();
}

struct Tally {
  double sum_ratio = 0;
  int count = 0;
  double worst = 0;
  void Add(double ours, double theirs) {
    const double ratio = theirs > 0 ? ours / theirs : (ours > 0 ? 2.0 : 1.0);
    sum_ratio += ratio;
    ++count;
    worst = std::max(worst, ratio);
  }
  double mean() const { return count ? sum_ratio / count : 1.0; }
};

const char* kSearchTypes[] = {"q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "iq4_nl", "iq4_xs", "tq1_0", "tq2_0"};

TEST(Quality, BeatsGgmlOnGoldenSourcesAndStories5M) {
  LOWBIT_REQUIRE_SHARED();
  auto g = GgufFile::Open(testing::SharedPath("golden/quant-golden.gguf"));
  ASSERT_TRUE(g.ok()) << g.status().message();
  std::map<std::string, Tally> plain, weighted;
  for (const char* src : {"gauss", "outliers", "uniform", "weights", "edge"}) {
    const GgufTensorInfo* in = g->FindTensor(std::string(src) + ".input");
    const GgufTensorInfo* imx = g->FindTensor(std::string(src) + ".imatrix");
    ASSERT_NE(in, nullptr);
    const auto* x = reinterpret_cast<const float*>(in->data);
    const auto* w = reinterpret_cast<const float*>(imx->data);
    const int64_t cols = in->dims[0], rows = in->dims[1];
    for (const char* tname : kSearchTypes) {
      const GgmlType type = FindGgmlTypeByName(tname)->type;
      for (bool use_imx : {false, true}) {
        const std::string base = std::string(src) + "." + tname + (use_imx ? ".imx" : "");
        const GgufTensorInfo* deq = g->FindTensor(base + ".deq");
        if (deq == nullptr) continue;  // block size does not divide cols, or no imatrix variant
        const float* weights = use_imx ? w : nullptr;
        const double theirs = TheirRmse(x, reinterpret_cast<const float*>(deq->data), rows, cols, weights);
        const double ours = OurRmse(type, x, rows, cols, weights);
        SCOPED_TRACE(base);
        EXPECT_LE(ours, theirs * (1 + 1e-9)) << "ours " << ours << " ggml " << theirs;
        (use_imx ? weighted : plain)[tname].Add(ours, theirs);
        if (std::getenv("LOWBIT_QUALITY_DETAIL")) std::printf("  %-24s %.4f\n", base.c_str(), ours / theirs);
      }
    }
  }
  // stories5M weights that llama.cpp itself quantized to K-quants (no imatrix).
  auto f32 = GgufFile::Open(testing::SharedPath("models/stories5M/stories5M-f32.gguf"));
  ASSERT_TRUE(f32.ok());
  for (const char* file : {"q2_k", "q3_k_m", "q4_k_m", "q5_k_m", "q6_k"}) {
    auto theirs_file = GgufFile::Open(testing::SharedPath(std::string("models/stories5M/llamacpp/stories5M-") + file + ".gguf"));
    ASSERT_TRUE(theirs_file.ok());
    for (const GgufTensorInfo& t : theirs_file->tensors()) {
      if (t.n_dims != 2 || FromFloatFor(t.type) == nullptr || !UsesImatrix(t.type)) continue;
      const GgufTensorInfo* src = f32->FindTensor(t.name);
      const auto* x = reinterpret_cast<const float*>(src->data);
      std::vector<float> y(t.n_elements);
      ToFloatFor(t.type)(t.data, y.data(), static_cast<int64_t>(t.n_elements));
      const int64_t cols = t.dims[0], rows = t.dims[1];
      const double theirs = TheirRmse(x, y.data(), rows, cols, nullptr);
      const double ours = OurRmse(t.type, x, rows, cols, nullptr);
      SCOPED_TRACE(std::string(file) + ":" + t.name);
      EXPECT_LE(ours, theirs * (1 + 1e-9)) << "ours " << ours << " ggml " << theirs;
      std::string tname(TypeInfo(t.type).name);
      for (char& c : tname) c = static_cast<char>(std::tolower(c));
      if (tname.size() == 4 && tname[3] == 'k') tname[3] = 'K';
      plain[tname].Add(ours, theirs);
      if (std::getenv("LOWBIT_QUALITY_DETAIL")) std::printf("  %-8s %-28s %.4f\n", file, t.name.c_str(), ours / theirs);
    }
  }
  std::printf("\n%-8s %10s %8s %10s %10s %8s\n", "type", "plain", "(n)", "worst", "imatrix", "(n)");
  for (const char* tname : kSearchTypes) {
    std::printf("%-8s %10.4f %8d %10.4f %10.4f %8d\n", tname, plain[tname].mean(), plain[tname].count,
                plain[tname].worst, weighted[tname].mean(), weighted[tname].count);
  }
  // Mean ratio target 0.95 (5% lower RMSE). Q4_K without an importance matrix is held to 0.965:
  // on Gaussian-like weights ggml's Q4_K is within ~4% of the best any Q4_K encoder can do
  // (measured against a brute-force optimum, docs/QUALITY.md), so 5% is not attainable there.
  for (const char* tname : {"q2_K", "q3_K", "q4_K", "q5_K", "iq4_xs"}) {
    const double target = std::string(tname) == "q4_K" ? 0.965 : 0.95;
    EXPECT_LE(plain[tname].mean(), target) << tname << ": mean RMSE ratio (ours / ggml) without imatrix";
    if (weighted[tname].count) {
      EXPECT_LE(weighted[tname].mean(), 0.95) << tname << " with imatrix";
    }
  }
}

}  // namespace
}  // namespace lowbit

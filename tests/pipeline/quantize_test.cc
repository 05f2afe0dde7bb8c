// `lowbit quantize`: mixes reproduce llama.cpp's per-tensor types and file sizes, files read back
// with the right types/metadata and re-serialize identically, the importance matrix lowers the
// weighted error, and bad input fails cleanly without leaving a file.
#include <gtest/gtest.h>

#include <cstring>
#include <cmath>
#include <filesystem>
#include <map>

#include "lowbit/numeric/dequant.h"

#include "lowbit/formats/gguf_reader.h"
#include "lowbit/formats/gguf_writer.h"
#include "lowbit/formats/imatrix.h"
#include "lowbit/pipeline/quantize.h"
#include "test_data.h"

namespace lowbit {
namespace {

Expected<QuantizeReport> RunQuantize(const std::string& in, const std::string& out, const std::string& type,
                             QuantizeOptions o = {}) {
  o.input = in;
  o.output = out;
  o.type = type;
  o.threads = 2;
  return QuantizeModel(o);
}

std::string F32Model() { return testing::SharedPath("models/stories5M/stories5M-f32.gguf"); }

// llama.cpp's files for stories5M: every tensor must get the type llama.cpp chose.
TEST(Quantize, MixesChooseLlamaCppTypes) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  const std::pair<const char*, const char*> cases[] = {
      {"Q2_K", "q2_k"}, {"Q3_K_M", "q3_k_m"}, {"Q4_K_M", "q4_k_m"}, {"Q5_K_M", "q5_k_m"},
      {"Q6_K", "q6_k"}, {"Q4_0", "q4_0"}, {"Q8_0", "q8_0"}};
  for (const auto& [mix, file] : cases) {
    SCOPED_TRACE(mix);
    auto r = RunQuantize(F32Model(), dir.Path("out.gguf"), mix);
    ASSERT_TRUE(r.ok()) << r.status().message();
    auto ref = GgufFile::Open(testing::SharedPath(std::string("models/stories5M/llamacpp/stories5M-") + file + ".gguf"));
    ASSERT_TRUE(ref.ok());
    auto got = GgufFile::Open(dir.Path("out.gguf"));
    ASSERT_TRUE(got.ok()) << got.status().message();
    for (const GgufTensorInfo& t : ref->tensors()) {
      const GgufTensorInfo* g = got->FindTensor(t.name);
      ASSERT_NE(g, nullptr) << t.name;
      EXPECT_EQ(TypeInfo(g->type).name, TypeInfo(t.type).name) << t.name;
    }
    EXPECT_EQ(got->file_size(), ref->file_size());
    EXPECT_EQ(*got->GetUInt("general.file_type"), *ref->GetUInt("general.file_type"));
  }
}

// Sizes of llama.cpp's other stories5M mixes (models/README.md): within 3%.
TEST(Quantize, MixSizesWithinThreePercentOfLlamaCpp) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  struct Want { const char* type; bool pure; uint64_t bytes; };
  const Want wants[] = {{"Q4_K_S", false, 2879936}, {"Q4_1", false, 3166656}, {"Q5_0", false, 3469760},
                        {"Q4_K", true, 2829760},    {"Q4_0", true, 2829760},   {"Q2_K", true, 1662400},
                        {"F16", false, 9989568}};
  for (const Want& w : wants) {
    QuantizeOptions o;
    o.pure = w.pure;
    auto r = RunQuantize(F32Model(), dir.Path("out.gguf"), w.type, o);
    ASSERT_TRUE(r.ok()) << r.status().message();
    const double rel = std::abs(static_cast<double>(r->file_size) - static_cast<double>(w.bytes)) / static_cast<double>(w.bytes);
    EXPECT_LT(rel, 0.03) << w.type << (w.pure ? " --pure" : "") << ": " << r->file_size << " vs " << w.bytes;
  }
}

// stories260K's shapes fit no K-quant: the per-tensor fallbacks give llama.cpp's files exactly.
TEST(Quantize, FallbacksMatchLlamaCppOnStories260K) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  for (const auto& [mix, file] : {std::pair{"Q6_K", "q8_0-mix"}, std::pair{"Q4_K_S", "q5_0-mix"}}) {
    auto r = RunQuantize(testing::SharedPath("models/stories260K/stories260K-f32.gguf"), dir.Path("o.gguf"), mix);
    ASSERT_TRUE(r.ok()) << r.status().message();
    auto ref = GgufFile::Open(testing::SharedPath(std::string("models/stories260K/stories260K-") + file + ".gguf"));
    auto got = GgufFile::Open(dir.Path("o.gguf"));
    ASSERT_TRUE(got.ok());
    for (const GgufTensorInfo& t : ref->tensors()) {
      EXPECT_EQ(TypeInfo(got->FindTensor(t.name)->type).name, TypeInfo(t.type).name) << mix << " " << t.name;
    }
    EXPECT_EQ(got->file_size(), ref->file_size()) << mix;
    bool noted = false;
    for (const auto& t : r->tensors) noted |= !t.note.empty();
    EXPECT_TRUE(noted) << "fallbacks are explained in the report";
  }
}

// Every mix: the file reads back with the reported types, keeps the input's metadata, and
// re-serializes to identical bytes.
TEST(Quantize, EveryMixRoundTrips) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  auto src = GgufFile::Open(F32Model());
  ASSERT_TRUE(src.ok());
  for (const char* mix : {"Q2_K", "Q2_K_S", "Q3_K_S", "Q3_K_L", "Q4_K_S", "Q5_K_S", "Q5_1", "BF16", "IQ4_NL",
                          "IQ4_XS", "TQ1_0", "TQ2_0", "Q3_K"}) {
    SCOPED_TRACE(mix);
    auto r = RunQuantize(F32Model(), dir.Path("m.gguf"), mix);
    ASSERT_TRUE(r.ok()) << r.status().message();
    auto g = GgufFile::Open(dir.Path("m.gguf"));
    ASSERT_TRUE(g.ok()) << g.status().message();
    ASSERT_EQ(g->tensors().size(), r->tensors.size());
    for (const auto& t : r->tensors) {
      const GgufTensorInfo* gi = g->FindTensor(t.name);
      ASSERT_NE(gi, nullptr);
      EXPECT_EQ(TypeInfo(gi->type).name, t.type);
      EXPECT_EQ(gi->n_elements, src->FindTensor(t.name)->n_elements);
      if (t.quantized) {
        EXPECT_GT(t.sqnr_db, 0.0) << t.name;
        EXPECT_LT(t.rmse, 0.1) << t.name;
      }
    }
    for (const GgufKv& kv : src->kvs()) {
      if (kv.key == "general.file_type") continue;
      ASSERT_NE(g->Find(kv.key), nullptr) << kv.key;
      EXPECT_TRUE(*g->Find(kv.key) == kv.value) << kv.key;
    }
    EXPECT_EQ(*g->GetUInt("general.quantization_version"), 2u);
    auto w = GgufWriter::CopyOf(*g);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE(w->Write(dir.Path("copy.gguf")).ok());
    EXPECT_TRUE(testing::ReadFileBytes(dir.Path("copy.gguf")) == testing::ReadFileBytes(dir.Path("m.gguf")));
  }
}

TEST(Quantize, ImatrixLowersTheWeightedError) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  const std::string imx = testing::SharedPath("models/stories5M/llamacpp/stories5M-imatrix.dat");
  auto im = LoadImatrix(imx);
  ASSERT_TRUE(im.ok()) << im.status().message();
  for (const char* mix : {"Q4_K_M", "Q2_K", "IQ4_XS"}) {
    QuantizeOptions with;
    with.imatrix = imx;
    auto a = RunQuantize(F32Model(), dir.Path("a.gguf"), mix, with);
    ASSERT_TRUE(a.ok()) << a.status().message();
    // The same files without the importance matrix, scored with it.
    auto b = RunQuantize(F32Model(), dir.Path("b.gguf"), mix);
    ASSERT_TRUE(b.ok());
    auto ga = GgufFile::Open(dir.Path("a.gguf"));
    auto gb = GgufFile::Open(dir.Path("b.gguf"));
    auto src = GgufFile::Open(F32Model());
    int better = 0, compared = 0;
    for (const auto& t : a->tensors) {
      const ImatrixEntry* e = im->Find(t.name);
      if (!t.quantized || e == nullptr) continue;
      ASSERT_GE(t.weighted_rmse, 0.0) << t.name;
      const GgufTensorInfo* x = src->FindTensor(t.name);
      const GgufTensorInfo* qb = gb->FindTensor(t.name);
      const uint64_t cols = x->dims[0], rows = x->dims[1];
      std::vector<float> y(cols);
      double se = 0, sw = 0;
      for (uint64_t r = 0; r < rows; ++r) {
        ToFloatFor(qb->type)(qb->data + r * (qb->n_bytes / rows), y.data(), static_cast<int64_t>(cols));
        const auto* xr = reinterpret_cast<const float*>(x->data) + r * cols;
        for (uint64_t c = 0; c < cols; ++c) {
          se += e->values[c] * (xr[c] - y[c]) * (xr[c] - y[c]);
          sw += e->values[c];
        }
      }
      const double without = std::sqrt(se / sw);
      better += t.weighted_rmse < without;
      ++compared;
      EXPECT_LE(t.weighted_rmse, without * 1.0001) << mix << " " << t.name;
    }
    EXPECT_EQ(compared, 42) << mix;
    EXPECT_GT(better, 35) << mix;
  }
}

TEST(Quantize, OverridesAndRequantize) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  QuantizeOptions o;
  o.tensor_types = {"ffn_(up|gate)=Q8_0", "attn_q=Q5_K"};
  o.output_tensor_type = "q8_0";
  o.token_embedding_type = "F16";
  auto r = RunQuantize(F32Model(), dir.Path("o.gguf"), "Q4_K_M", o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  auto g = GgufFile::Open(dir.Path("o.gguf"));
  EXPECT_EQ(g->FindTensor("blk.3.ffn_up.weight")->type, GgmlType::kQ8_0);
  EXPECT_EQ(g->FindTensor("blk.3.ffn_gate.weight")->type, GgmlType::kQ8_0);
  EXPECT_EQ(g->FindTensor("blk.0.attn_q.weight")->type, GgmlType::kQ5_K);
  EXPECT_EQ(g->FindTensor("blk.0.attn_k.weight")->type, GgmlType::kQ4_K);
  EXPECT_EQ(g->FindTensor("output.weight")->type, GgmlType::kQ8_0);
  EXPECT_EQ(g->FindTensor("token_embd.weight")->type, GgmlType::kF16);

  const std::string q4 = testing::SharedPath("models/stories5M/llamacpp/stories5M-q4_k_m.gguf");
  auto refused = RunQuantize(q4, dir.Path("rq.gguf"), "Q3_K_M");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("--allow-requantize"), std::string::npos);
  QuantizeOptions allow;
  allow.allow_requantize = true;
  auto rq = RunQuantize(q4, dir.Path("rq.gguf"), "Q3_K_M", allow);
  ASSERT_TRUE(rq.ok()) << rq.status().message();
}

TEST(Quantize, BadInputFailsCleanlyAndLeavesNoFile) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  const std::string out = dir.Path("out.gguf");
  auto r = RunQuantize(F32Model(), out, "Q4_KM");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("Q4_K_M"), std::string::npos) << "lists the accepted names";
  r = RunQuantize(F32Model(), out, "IQ2_XXS");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("cannot be written"), std::string::npos);
  QuantizeOptions o;
  o.imatrix = testing::SharedPath("models/stories5M/llamacpp/stories5M-imatrix.dat");
  r = RunQuantize(testing::SharedPath("models/stories260K/stories260K-f32.gguf"), out, "Q8_0", o);  // other model: lengths
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("another model"), std::string::npos) << r.status().message();
  Imatrix foreign;
  foreign.entries.push_back({"model.layers.0.mlp.down_proj", 1, std::vector<float>(768, 1.0f)});
  ASSERT_TRUE(WriteImatrixDat(dir.Path("foreign.dat"), foreign).ok());
  o.imatrix = dir.Path("foreign.dat");
  r = RunQuantize(F32Model(), out, "Q4_K_M", o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("none of its 1 entries"), std::string::npos) << r.status().message();
  std::filesystem::remove(dir.Path("foreign.dat"));
  QuantizeOptions bad_regex;
  bad_regex.tensor_types = {"ffn_(=Q8_0"};
  r = RunQuantize(F32Model(), out, "Q4_K_M", bad_regex);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("regular expression"), std::string::npos);
  auto bytes = testing::ReadFileBytes(F32Model());
  bytes.resize(bytes.size() - 1000);
  testing::WriteFileBytes(dir.Path("cut.gguf"), bytes);
  r = RunQuantize(dir.Path("cut.gguf"), out, "Q4_K_M");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("truncated"), std::string::npos) << r.status().message();
  std::filesystem::remove(dir.Path("cut.gguf"));
  EXPECT_TRUE(dir.List().empty()) << "no output or temporary file left behind";
}

TEST(Imatrix, ReadsLlamaCppDatAndRoundTrips) {
  LOWBIT_REQUIRE_SHARED();
  const std::string path = testing::SharedPath("models/stories5M/llamacpp/stories5M-imatrix.dat");
  auto im = LoadImatrix(path);
  ASSERT_TRUE(im.ok()) << im.status().message();
  EXPECT_EQ(im->entries.size(), 42u);
  const ImatrixEntry* e = im->Find("blk.5.attn_output.weight");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->ncall, 5227);
  EXPECT_EQ(e->values.size(), 256u);
  EXPECT_FLOAT_EQ(e->values[0], 764.5584716796875f / 5227);
  EXPECT_EQ(im->Find("blk.3.ffn_down.weight")->values.size(), 768u);
  testing::TempDir dir;
  ASSERT_TRUE(WriteImatrixDat(dir.Path("copy.dat"), *im).ok());
  EXPECT_TRUE(testing::ReadFileBytes(dir.Path("copy.dat")) == testing::ReadFileBytes(path));
  auto bytes = testing::ReadFileBytes(path);
  for (size_t n : {size_t{0}, size_t{3}, size_t{30}, size_t{5000}, bytes.size() - 100}) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<long>(n));
    EXPECT_FALSE(ParseImatrixDat(cut, "cut.dat").ok()) << n;
  }
}

}  // namespace
}  // namespace lowbit

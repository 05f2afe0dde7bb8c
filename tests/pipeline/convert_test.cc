// Acceptance for `lowbit convert`: llama2.c and Hugging Face inputs give the tensors (names,
// shapes, values) and tokenizer metadata of the GGUF files llama.cpp's own converter made.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "lowbit/formats/gguf_reader.h"
#include "lowbit/numeric/half.h"
#include "lowbit/pipeline/convert.h"
#include "test_data.h"

namespace lowbit {
namespace {

struct Case {
  std::string input, vocab, reference;
};

GgufFile MustOpen(const std::string& path) {
  auto g = GgufFile::Open(path);
  EXPECT_TRUE(g.ok()) << g.status().message();
  return std::move(g).value();
}

std::string Convert(const testing::TempDir& dir, const std::string& input, const std::string& vocab,
                    GgmlType outtype = GgmlType::kF32) {
  ConvertOptions o;
  o.input = testing::SharedPath(input);
  o.vocab = vocab.empty() ? "" : testing::SharedPath(vocab);
  o.output = dir.Path("out.gguf");
  o.outtype = outtype;
  Status s = lowbit::Convert(o);
  EXPECT_TRUE(s.ok()) << s.message();
  return o.output;
}

// `round` maps each reference float to what the output should hold.
void ExpectSameTensors(const GgufFile& got, const GgufFile& ref, float (*round)(float), GgmlType type2d,
                       bool round_1d = false) {
  ASSERT_EQ(got.tensors().size(), ref.tensors().size());
  for (const GgufTensorInfo& r : ref.tensors()) {
    SCOPED_TRACE(r.name);
    const GgufTensorInfo* g = got.FindTensor(r.name);
    ASSERT_NE(g, nullptr);
    EXPECT_EQ(g->ShapeString(), r.ShapeString());
    ASSERT_EQ(r.type, GgmlType::kF32);
    const GgmlType want_type = r.n_dims >= 2 ? type2d : GgmlType::kF32;
    ASSERT_EQ(g->type, want_type);
    const auto* rv = reinterpret_cast<const float*>(r.data);
    for (uint64_t i = 0; i < r.n_elements; ++i) {
      float v;
      if (g->type == GgmlType::kF32) std::memcpy(&v, g->data + 4 * i, 4);
      else {
        uint16_t h;
        std::memcpy(&h, g->data + 2 * i, 2);
        v = g->type == GgmlType::kF16 ? Fp16ToFp32(h) : Bf16ToFp32(h);
      }
      const float want = g->n_dims >= 2 || round_1d ? round(rv[i]) : rv[i];
      ASSERT_EQ(FloatBits(v), FloatBits(want)) << "element " << i;
    }
  }
}

float Exact(float x) { return x; }
float ToBf16(float x) { return Bf16ToFp32(Fp32ToBf16(x)); }
float ToF16(float x) { return Fp16ToFp32(Fp32ToFp16(x)); }

void ExpectSameTokenizer(const GgufFile& got, const GgufFile& ref) {
  for (const char* key : {"tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.scores",
                          "tokenizer.ggml.token_type", "tokenizer.ggml.bos_token_id",
                          "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id"}) {
    const GgufValue* a = got.Find(key);
    const GgufValue* b = ref.Find(key);
    ASSERT_NE(a, nullptr) << key;
    ASSERT_NE(b, nullptr) << key;
    EXPECT_TRUE(*a == *b) << key << ": " << a->ToString() << " vs " << b->ToString();
  }
}

void ExpectLlamaHparams(const GgufFile& got, const GgufFile& ref) {
  for (const char* key : {"llama.embedding_length", "llama.feed_forward_length", "llama.block_count",
                          "llama.attention.head_count", "llama.attention.head_count_kv",
                          "llama.rope.dimension_count", "llama.context_length"}) {
    EXPECT_EQ(*got.GetUInt(key), *ref.GetUInt(key)) << key;
  }
  EXPECT_FLOAT_EQ(static_cast<float>(*got.GetFloat("llama.attention.layer_norm_rms_epsilon")),
                  static_cast<float>(*ref.GetFloat("llama.attention.layer_norm_rms_epsilon")));
  EXPECT_EQ(*got.GetString("general.architecture"), "llama");
}

TEST(Convert, Llama2cMatchesLlamaCppConverter) {
  LOWBIT_REQUIRE_SHARED();
  for (const Case& c : {Case{"models/stories260K/stories260K.bin", "models/stories260K/tok512.bin",
                             "models/stories260K/stories260K-f32.gguf"},
                        Case{"models/stories5M/stories5M.bin", "models/stories260K/tok512.bin",
                             "models/stories5M/stories5M-f32.gguf"}}) {
    SCOPED_TRACE(c.input);
    testing::TempDir dir;
    GgufFile got = MustOpen(Convert(dir, c.input, c.vocab));
    GgufFile ref = MustOpen(testing::SharedPath(c.reference));
    ExpectSameTensors(got, ref, Exact, GgmlType::kF32);
    ExpectSameTokenizer(got, ref);
    ExpectLlamaHparams(got, ref);
    EXPECT_EQ(*got.GetUInt("general.file_type"), 0u);
  }
}

TEST(Convert, HuggingFaceF32UndoesTheQKPermutation) {
  LOWBIT_REQUIRE_SHARED();
  for (const Case& c : {Case{"models/stories260K/hf-f32", "", "models/stories260K/stories260K-f32.gguf"},
                        Case{"models/stories5M/hf-f32", "", "models/stories5M/stories5M-f32.gguf"}}) {
    SCOPED_TRACE(c.input);
    testing::TempDir dir;
    GgufFile got = MustOpen(Convert(dir, c.input, c.vocab));
    GgufFile ref = MustOpen(testing::SharedPath(c.reference));
    ExpectSameTensors(got, ref, Exact, GgmlType::kF32);
    ExpectSameTokenizer(got, ref);
    ExpectLlamaHparams(got, ref);
  }
}

TEST(Convert, HuggingFaceBf16MatchesUpToRounding) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  GgufFile got = MustOpen(Convert(dir, "models/stories260K/hf-bf16", ""));
  GgufFile ref = MustOpen(testing::SharedPath("models/stories260K/stories260K-f32.gguf"));
  // F32 output from BF16 input: every weight (norms too) is the reference rounded to bf16 and back.
  ExpectSameTensors(got, ref, ToBf16, GgmlType::kF32, /*round_1d=*/true);
}

TEST(Convert, OuttypeF16AndBf16) {
  LOWBIT_REQUIRE_SHARED();
  GgufFile ref = MustOpen(testing::SharedPath("models/stories260K/stories260K-f32.gguf"));
  {
    testing::TempDir dir;
    GgufFile got = MustOpen(Convert(dir, "models/stories260K/stories260K.bin", "models/stories260K/tok512.bin", GgmlType::kF16));
    ExpectSameTensors(got, ref, ToF16, GgmlType::kF16);
    EXPECT_EQ(*got.GetUInt("general.file_type"), 1u);
    // llama.cpp's own F16 file of the same model holds the same tensor bytes.
    GgufFile theirs = MustOpen(testing::SharedPath("models/stories260K/stories260K-f16.gguf"));
    for (const GgufTensorInfo& t : theirs.tensors()) {
      const GgufTensorInfo* g = got.FindTensor(t.name);
      ASSERT_NE(g, nullptr);
      ASSERT_EQ(g->type, t.type) << t.name;
      EXPECT_EQ(std::memcmp(g->data, t.data, t.n_bytes), 0) << t.name;
    }
  }
  {
    testing::TempDir dir;
    GgufFile got = MustOpen(Convert(dir, "models/stories260K/hf-f32", "", GgmlType::kBF16));
    ExpectSameTensors(got, ref, ToBf16, GgmlType::kBF16);
  }
}

TEST(Convert, GgufToGgufIsLossless) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  GgufFile got = MustOpen(Convert(dir, "models/stories5M/stories5M-f32.gguf", ""));
  GgufFile ref = MustOpen(testing::SharedPath("models/stories5M/stories5M-f32.gguf"));
  ExpectSameTensors(got, ref, Exact, GgmlType::kF32);
  ExpectSameTokenizer(got, ref);
}

TEST(Convert, BadInputsFailCleanlyAndLeaveNoFile) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  auto run = [&](const std::string& input, const std::string& vocab) {
    ConvertOptions o;
    o.input = input;
    o.vocab = vocab;
    o.output = dir.Path("out.gguf");
    return lowbit::Convert(o);
  };
  Status s = run(dir.Path("missing.bin"), "");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("no such file"), std::string::npos);
  s = run(testing::SharedPath("models/stories260K/stories260K.bin"), "");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("--vocab"), std::string::npos) << s.message();
  // The 32000-token Llama 2 tokenizer for a 512-token model.
  s = run(testing::SharedPath("models/stories260K/stories260K.bin"),
          testing::SharedPath("models/llama2c-tokenizer/tokenizer.model"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("32000"), std::string::npos) << s.message();
  // Truncated checkpoint.
  auto bytes = testing::ReadFileBytes(testing::SharedPath("models/stories260K/stories260K.bin"));
  bytes.resize(bytes.size() / 2);
  testing::WriteFileBytes(dir.Path("cut.bin"), bytes);
  s = run(dir.Path("cut.bin"), testing::SharedPath("models/stories260K/tok512.bin"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("truncated"), std::string::npos) << s.message();
  std::filesystem::remove(dir.Path("cut.bin"));
  EXPECT_TRUE(dir.List().empty()) << "a failed conversion left a file behind";
}

TEST(Convert, UnpermuteIsTheInverseOfHuggingFacesPermutation) {
  // HF: hf_row(h, j, i) = h*hd + j*hd/2 + i holds original row h*hd + 2i + j.
  const uint32_t heads = 3;
  const uint64_t hd = 8, rows = heads * hd;
  std::vector<bool> seen(rows, false);
  for (uint64_t r = 0; r < rows; ++r) {
    const uint64_t src = UnpermuteSourceRow(r, rows, heads);
    const uint64_t h = src / hd, j = (src % hd) / (hd / 2), i = src % (hd / 2);
    EXPECT_EQ(r, h * hd + 2 * i + j);
    EXPECT_FALSE(seen[src]);
    seen[src] = true;
  }
}

}  // namespace
}  // namespace lowbit

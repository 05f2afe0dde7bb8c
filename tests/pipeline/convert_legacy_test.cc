// Acceptance for `lowbit convert` of legacy llama.cpp files: stories260K written by a test writer
// that follows 2023's layouts ('ggml', 'ggmf' v1, 'ggjt' v1-v3; F32, F16, Q4_0, Q4_1, Q5_0, Q5_1,
// Q8_0) converts to a GGUF whose tensors equal the original model's bit for bit, with its tokenizer
// and hyperparameters, and which scores the original's perplexity.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>

#include "../formats/ggml_legacy_writer.h"
#include "lowbit/eval/perplexity.h"
#include "lowbit/formats/gguf_reader.h"
#include "lowbit/formats/gguf_vocab.h"
#include "lowbit/formats/gguf_writer.h"
#include "lowbit/formats/hf.h"
#include "lowbit/numeric/dequant.h"
#include "lowbit/pipeline/convert.h"
#include "lowbit/quant/quantize.h"
#include "test_data.h"

namespace lowbit {
namespace {

using testing::LegacyFileOut;

GgufFile MustOpen(const std::string& path) {
  auto g = GgufFile::Open(path);
  EXPECT_TRUE(g.ok()) << g.status().message();
  return std::move(g).value();
}

struct Version {
  GgmlLegacyFormat format;
  uint32_t version;
  const char* name;
};
const Version kVersions[] = {{GgmlLegacyFormat::kGgml, 0, "ggml"},
                             {GgmlLegacyFormat::kGgmf, 1, "ggmf-v1"},
                             {GgmlLegacyFormat::kGgjt, 1, "ggjt-v1"},
                             {GgmlLegacyFormat::kGgjt, 2, "ggjt-v2"},
                             {GgmlLegacyFormat::kGgjt, 3, "ggjt-v3"}};

// stories260K with every 2-D tensor whose rows fill blocks quantized to `type` by lowbit (ggml's
// reference rounding), the others F16, as a GGUF in `dir`.
std::string QuantizedStories(const testing::TempDir& dir, GgmlType type) {
  GgufFile src = MustOpen(testing::SharedPath("models/stories260K/stories260K-f32.gguf"));
  GgufWriter w;
  for (const GgufKv& kv : src.kvs()) w.SetKv(kv.key, kv.value);
  w.SetKv("general.file_type", GgufValue::U32(type == GgmlType::kQ4_0 ? 2 : 3));
  w.SetKv("general.quantization_version", GgufValue::U32(2));
  for (const GgufTensorInfo& t : src.tensors()) {
    const auto* x = reinterpret_cast<const float*>(t.data);
    const uint64_t cols = t.dims[0], rows = t.rows();
    const GgmlType out = t.n_dims == 1 ? GgmlType::kF32 : cols % 32 == 0 ? type : GgmlType::kF16;
    std::vector<uint64_t> dims(t.dims.begin(), t.dims.begin() + t.n_dims);
    EXPECT_TRUE(w.AddTensor(t.name, out, dims, [x, cols, rows, out](std::span<uint8_t> dst) {
                   const uint64_t rb = *RowBytes(out, cols);
                   for (uint64_t r = 0; r < rows; ++r) {
                     if (out == GgmlType::kF32) std::memcpy(dst.data() + r * rb, x + r * cols, rb);
                     else if (out == GgmlType::kF16) {
                       for (uint64_t c = 0; c < cols; ++c) {
                         const uint16_t h = Fp32ToFp16(x[r * cols + c]);
                         std::memcpy(dst.data() + r * rb + 2 * c, &h, 2);
                       }
                     } else {
                       FromFloatFor(out)(x + r * cols, dst.data() + r * rb, static_cast<int64_t>(cols), nullptr);
                     }
                   }
                   return OkStatus();
                 }).ok());
  }
  const std::string path = dir.Path(std::string("stories260K-") + std::string(TypeInfo(type).name) + ".gguf");
  EXPECT_TRUE(w.Write(path).ok());
  return path;
}

ConvertOptions LegacyOptions(const GgufFile& ref, const std::string& input, const std::string& output) {
  ConvertOptions o;
  o.input = input;
  o.output = output;
  o.legacy.context_length = static_cast<uint32_t>(*ref.GetUInt("llama.context_length"));
  o.legacy.rms_epsilon = static_cast<float>(*ref.GetFloat("llama.attention.layer_norm_rms_epsilon"));
  return o;
}

void ExpectSameTensorBytes(const GgufFile& got, const GgufFile& ref) {
  ASSERT_EQ(got.tensors().size(), ref.tensors().size());
  for (const GgufTensorInfo& r : ref.tensors()) {
    SCOPED_TRACE(r.name);
    const GgufTensorInfo* g = got.FindTensor(r.name);
    ASSERT_NE(g, nullptr);
    EXPECT_EQ(g->ShapeString(), r.ShapeString());
    ASSERT_EQ(TypeInfo(g->type).name, TypeInfo(r.type).name);
    ASSERT_EQ(g->n_bytes, r.n_bytes);
    EXPECT_EQ(std::memcmp(g->data, r.data, r.n_bytes), 0) << "tensor bytes differ";
  }
}

void ExpectSameMetadata(const GgufFile& got, const GgufFile& ref, bool scores) {
  for (const char* key : {"llama.embedding_length", "llama.feed_forward_length", "llama.block_count",
                          "llama.attention.head_count", "llama.attention.head_count_kv",
                          "llama.rope.dimension_count", "llama.context_length"}) {
    EXPECT_EQ(*got.GetUInt(key), *ref.GetUInt(key)) << key;
  }
  EXPECT_EQ(*got.GetFloat("llama.attention.layer_norm_rms_epsilon"), *ref.GetFloat("llama.attention.layer_norm_rms_epsilon"));
  EXPECT_EQ(*got.GetString("general.architecture"), "llama");
  for (const char* key : {"tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type",
                          "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id"}) {
    if (!scores && std::string(key) == "tokenizer.ggml.scores") continue;
    const GgufValue* a = got.Find(key);
    const GgufValue* b = ref.Find(key);
    ASSERT_NE(a, nullptr) << key;
    ASSERT_NE(b, nullptr) << key;
    EXPECT_TRUE(*a == *b) << key << ": " << a->ToString() << " vs " << b->ToString();
  }
}

double PerplexityOf(const std::string& path) {
  GgufFile g = MustOpen(path);
  auto m = LlamaModel::Load(g);
  EXPECT_TRUE(m.ok()) << m.status().message();
  auto v = VocabFromGguf(g);
  EXPECT_TRUE(v.ok());
  auto text = ReadTextFile(testing::SharedPath("data/tinystories/TinyStoriesV2-GPT4-valid.first100.txt"));
  EXPECT_TRUE(text.ok());
  auto r = Perplexity(*m, *v, *text, {128, 6, 2});
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? r->ppl : 0;
}

// Writes `ref` as each legacy version, converts it and checks the result equals `ref`.
void RoundTripEveryVersion(const std::string& ref_path, bool check_perplexity) {
  GgufFile ref = MustOpen(ref_path);
  const double ref_ppl = check_perplexity ? PerplexityOf(ref_path) : 0;
  for (const Version& v : kVersions) {
    SCOPED_TRACE(v.name);
    testing::TempDir dir;
    const std::string old = dir.Path(std::string("stories260K.") + v.name + ".bin");
    testing::WriteFileBytes(old, testing::LegacyFileBytes(testing::LegacyFileFromGguf(ref, v.format, v.version)));
    ConvertOptions o = LegacyOptions(ref, old, dir.Path("out.gguf"));
    std::vector<std::string> notes;
    o.notes = &notes;
    // 'ggml' files have no scores: the real ones come with --vocab (here the original GGUF's).
    if (v.format == GgmlLegacyFormat::kGgml) o.vocab = ref_path;
    Status s = Convert(o);
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_TRUE(notes.empty()) << notes[0];
    GgufFile got = MustOpen(o.output);
    ExpectSameTensorBytes(got, ref);
    ExpectSameMetadata(got, ref, true);
    EXPECT_EQ(*got.GetUInt("general.file_type"), testing::FileType(ref));
    if (check_perplexity) {
      EXPECT_EQ(PerplexityOf(o.output), ref_ppl);
    }
    // Read directly (as `lowbit run OLD.bin` does): the plan holds today's blocks.
    auto plan = PlanConversion(old, o.vocab, o.legacy);
    ASSERT_TRUE(plan.ok()) << plan.status().message();
    for (const PlannedTensor& t : plan->tensors) {
      const GgufTensorInfo* r = ref.FindTensor(t.name);
      ASSERT_NE(r, nullptr);
      ASSERT_EQ(t.data.size(), r->n_bytes);
      EXPECT_EQ(std::memcmp(t.data.data(), r->data, r->n_bytes), 0) << t.name;
    }
  }
}

TEST(ConvertLegacy, F32FilesOfEveryVersionEqualTheOriginal) {
  LOWBIT_REQUIRE_SHARED();
  RoundTripEveryVersion(testing::SharedPath("models/stories260K/stories260K-f32.gguf"), true);
}

TEST(ConvertLegacy, Q8_0AndF16BlocksOfEveryVersionAreKeptBitForBit) {
  LOWBIT_REQUIRE_SHARED();
  RoundTripEveryVersion(testing::SharedPath("models/stories260K/stories260K-q8_0-mix.gguf"), true);
}

TEST(ConvertLegacy, Q5_0AndQ5_1BlocksOfEveryVersionAreKeptBitForBit) {
  LOWBIT_REQUIRE_SHARED();
  RoundTripEveryVersion(testing::SharedPath("models/stories260K/stories260K-q5_0-mix.gguf"), false);
}

TEST(ConvertLegacy, Q4_0AndQ4_1BlocksOfEveryVersionAreKeptBitForBit) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  RoundTripEveryVersion(QuantizedStories(dir, GgmlType::kQ4_0), true);
  RoundTripEveryVersion(QuantizedStories(dir, GgmlType::kQ4_1), false);
}

TEST(ConvertLegacy, UnversionedGgmlWithoutVocabHasZeroScoresAndSaysSo) {
  LOWBIT_REQUIRE_SHARED();
  const std::string ref_path = testing::SharedPath("models/stories260K/stories260K-f32.gguf");
  GgufFile ref = MustOpen(ref_path);
  testing::TempDir dir;
  testing::WriteFileBytes(dir.Path("old.bin"), testing::LegacyFileBytes(testing::LegacyFileFromGguf(ref, kVersions[0].format, 0)));
  ConvertOptions o = LegacyOptions(ref, dir.Path("old.bin"), dir.Path("out.gguf"));
  std::vector<std::string> notes;
  o.notes = &notes;
  ASSERT_TRUE(Convert(o).ok());
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("--vocab"), std::string::npos) << notes[0];
  GgufFile got = MustOpen(o.output);
  ExpectSameMetadata(got, ref, /*scores=*/false);
  for (const GgufValue& s : got.Find("tokenizer.ggml.scores")->elements()) EXPECT_EQ(*s.AsFloat(), 0.0);
  ExpectSameTensorBytes(got, ref);
}

// Blocks quantized as 2023's ggml did it (F32 scale d = amax / 127 or max / -8), which F16 cannot
// hold: each is requantized from its dequantized values, and the converter says so.
TEST(ConvertLegacy, F32ScalesF16CannotHoldAreRequantizedFromTheDequantizedValues) {
  LOWBIT_REQUIRE_SHARED();
  const std::string ref_path = testing::SharedPath("models/stories260K/stories260K-f32.gguf");
  GgufFile ref = MustOpen(ref_path);
  for (const Version& v : {kVersions[2], kVersions[3]}) {
    for (GgmlType type : {GgmlType::kQ8_0, GgmlType::kQ4_0}) {
      SCOPED_TRACE(std::string(v.name) + " " + std::string(TypeInfo(type).name));
      LegacyFileOut f = testing::LegacyFileFromGguf(ref, v.format, v.version);
      uint64_t old_blocks = 0;
      for (testing::LegacyTensorOut& t : f.tensors) {
        if (t.dims.size() != 2 || t.dims[0] % 32 != 0) continue;
        std::vector<float> x(t.bytes.size() / 4);
        std::memcpy(x.data(), t.bytes.data(), t.bytes.size());
        t.type = static_cast<uint32_t>(type);
        t.bytes.clear();
        for (size_t b = 0; b < x.size() / 32; ++b, ++old_blocks) {  // ggml's 2023 reference quantizers
          const float* xb = x.data() + 32 * b;
          float amax = 0, max = 0;
          for (int j = 0; j < 32; ++j) {
            if (std::fabs(xb[j]) > amax) {
              amax = std::fabs(xb[j]);
              max = xb[j];
            }
          }
          const float d = type == GgmlType::kQ8_0 ? amax / 127.0f : max / -8.0f;
          const float id = d != 0 ? 1.0f / d : 0.0f;
          testing::PutF32(t.bytes, d);
          if (type == GgmlType::kQ8_0) {
            for (int j = 0; j < 32; ++j) t.bytes.push_back(static_cast<uint8_t>(static_cast<int8_t>(std::round(xb[j] * id))));
          } else {
            uint8_t q[32];
            for (int j = 0; j < 32; ++j) q[j] = static_cast<uint8_t>(std::min(15, static_cast<int>(xb[j] * id + 8.5f)));
            for (int i = 0; i < 16; ++i) {
              t.bytes.push_back(v.version == 1 ? static_cast<uint8_t>(q[2 * i] | (q[2 * i + 1] << 4))
                                               : static_cast<uint8_t>(q[i] | (q[i + 16] << 4)));
            }
          }
        }
      }
      testing::TempDir dir;
      const std::string old = dir.Path("old.bin");
      testing::WriteFileBytes(old, testing::LegacyFileBytes(f));
      ConvertOptions o = LegacyOptions(ref, old, dir.Path("out.gguf"));
      std::vector<std::string> notes;
      o.notes = &notes;
      ASSERT_TRUE(Convert(o).ok());
      ASSERT_EQ(notes.size(), 1u);
      EXPECT_NE(notes[0].find("requantized"), std::string::npos) << notes[0];
      EXPECT_NE(notes[0].find(std::string(v.name).replace(4, 1, " ")), std::string::npos) << notes[0];
      GgufFile got = MustOpen(o.output);
      auto old_file = GgmlLegacyFile::Open(old);
      ASSERT_TRUE(old_file.ok());
      uint64_t requantized = 0, blocks = 0;
      for (const GgmlLegacyTensor& t : old_file->tensors()) {
        if (t.type != type) continue;
        auto it = std::find_if(got.tensors().begin(), got.tensors().end(),
                               [&](const GgufTensorInfo& gi) { return testing::LegacyName(gi.name) == t.name; });
        ASSERT_NE(it, got.tensors().end());
        ASSERT_EQ(it->type, type);
        const uint64_t in_b = LegacyBlockBytes(type, old_file->layout()), out_b = TypeInfo(type).block_bytes;
        for (uint64_t b = 0; b < t.data.size() / in_b; ++b, ++blocks) {
          float x[32], y[32];
          DequantizeLegacyBlock(type, old_file->layout(), t.data.data() + b * in_b, x);
          uint8_t want[64];
          if (!RepackLegacyBlock(type, old_file->layout(), t.data.data() + b * in_b, want)) {
            FromFloatFor(type)(x, want, 32, nullptr);
            ++requantized;
          }
          ASSERT_EQ(std::memcmp(it->data + b * out_b, want, out_b), 0) << t.name << " block " << b;
          DequantizeRow(type, it->data + b * out_b, y, 32);
          float amax = 0;
          for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
          for (int j = 0; j < 32; ++j) ASSERT_LE(std::fabs(x[j] - y[j]), amax * 2e-3f + 1e-7f) << t.name << " block " << b;
        }
      }
      EXPECT_EQ(blocks, old_blocks);
      EXPECT_GT(requantized, blocks / 2) << "most F32 scales are not F16 values";
      EXPECT_NE(notes[0].find(fmt::format("{} of {}", requantized, blocks)), std::string::npos) << notes[0];
    }
  }
}

TEST(ConvertLegacy, BadFilesFailWithTheFieldNamedAndLeaveNoFile) {
  LOWBIT_REQUIRE_SHARED();
  GgufFile ref = MustOpen(testing::SharedPath("models/stories260K/stories260K-f32.gguf"));
  const LegacyFileOut good = testing::LegacyFileFromGguf(ref, kVersions[4].format, 3);
  struct Bad {
    const char* what;
    std::function<void(LegacyFileOut&)> edit;
    size_t cut = 0;  // bytes taken off the end
  };
  const Bad cases[] = {
      {"feed_forward.w1.weight' has shape", [](LegacyFileOut& f) { f.hp[2] = 32; }},
      {"n_rot = 4", [](LegacyFileOut& f) { f.hp[5] = 4; }},
      {"no tensor 'layers.4.ffn_norm.weight'", [](LegacyFileOut& f) { f.tensors.pop_back(); }},
      {"truncated?", [](LegacyFileOut&) {}, 10},
      {"n_vocab = 4000000", [](LegacyFileOut& f) { f.hp[0] = 4000000; }},
  };
  for (const Bad& c : cases) {
    SCOPED_TRACE(c.what);
    LegacyFileOut f = good;
    c.edit(f);
    std::vector<uint8_t> bytes = testing::LegacyFileBytes(f);
    bytes.resize(bytes.size() - c.cut);
    testing::TempDir dir;
    testing::WriteFileBytes(dir.Path("old.bin"), bytes);
    ConvertOptions o = LegacyOptions(ref, dir.Path("old.bin"), dir.Path("out.gguf"));
    Status s = Convert(o);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find(c.what), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("old.bin"), std::string::npos) << s.message();
    EXPECT_FALSE(std::filesystem::exists(o.output));
    EXPECT_EQ(dir.List().size(), 1u) << "a failed conversion left a file behind";
  }
}

}  // namespace
}  // namespace lowbit

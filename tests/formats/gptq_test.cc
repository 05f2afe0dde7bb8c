// GPTQ layers (quant_checkpoint.h): bit-exact round trips over every bits value, zero convention,
// pack width and group shape; known words; the two v1 zero rules; the dequantization formula.
#include <gtest/gtest.h>

#include <cstring>

#include "lowbit/base/check.h"
#include "lowbit/formats/int_pack.h"
#include "quant_test_util.h"

namespace lowbit {
namespace {

using testing::LinearSpec;
using testing::RandomLinear;
using testing::RoundTrip;

QuantConfig Gptq(int bits, int64_t group_size, CheckpointFormat format, bool sym, bool desc_act, int pack_bits = 32) {
  QuantConfig c;
  c.bits = bits;
  c.group_size = group_size;
  c.format = format;
  c.sym = sym;
  c.desc_act = desc_act;
  c.pack_bits = pack_bits;
  return c;
}

TEST(Gptq, RoundTripsBitExactly) {
  testing::TempDir dir;
  std::mt19937 rng(1);
  int cases = 0;
  for (int bits : {2, 3, 4, 8}) {
    for (CheckpointFormat fmt : {CheckpointFormat::kGptq, CheckpointFormat::kGptqV2}) {
      for (bool act_order : {false, true}) {
        for (bool sym : {false, true}) {
          // cols 288 with group 128: groups of 128, 128, 32 (stories5M's shape); group -1 per channel.
          for (int64_t group : {int64_t{128}, int64_t{32}, int64_t{-1}}) {
            LinearSpec s;
            s.bits = bits;
            s.rows = 64;
            s.cols = 288;
            s.group_size = group == -1 ? 288 : group;
            s.act_order = act_order;
            s.sym = sym;
            s.bias = (cases % 3) == 0;
            s.scale_dtype = (cases % 4) == 1 ? ScaleDtype::kBF16 : ScaleDtype::kF16;
            IntQuantLinear q = RandomLinear(rng, s);
            QuantConfig cfg = Gptq(bits, group, fmt, sym, act_order);
            SCOPED_TRACE(fmt::format("bits {} {} act_order {} sym {} group {}", bits, CheckpointFormatName(fmt),
                                     act_order, sym, group));
            // The GPTQModel reading of v1 recovers every zero 0..maxq; the per-field one all but 0.
            cfg.v1_zeros = V1Zeros::kGptqModel;
            auto back = RoundTrip(q, cfg, dir);
            ASSERT_TRUE(back.ok()) << back.status().message();
            testing::ExpectSameLinear(q, *back);
            ++cases;
          }
        }
      }
    }
  }
  EXPECT_EQ(cases, 96);
}

TEST(Gptq, PerFieldV1ReadingRoundTripsZerosAboveZero) {
  testing::TempDir dir;
  std::mt19937 rng(2);
  for (int bits : {2, 3, 4, 8}) {
    LinearSpec s;
    s.bits = bits;
    s.rows = 64;
    s.cols = 128;
    IntQuantLinear q = RandomLinear(rng, s);
    for (auto& z : q.zeros) z = std::max(z, 1);
    QuantConfig cfg = Gptq(bits, 32, CheckpointFormat::kGptq, false, false);
    QuantReadNotes notes;
    auto back = RoundTrip(q, cfg, dir, &notes);
    ASSERT_TRUE(back.ok()) << back.status().message();
    testing::ExpectSameLinear(q, *back);
    EXPECT_EQ(notes.v1_all_ones_zero_fields, 0);
  }
}

TEST(Gptq, GroupWiderThanTheLayerIsOneGroup) {
  testing::TempDir dir;
  std::mt19937 rng(12);
  LinearSpec s;
  s.rows = 32;
  s.cols = 64;
  s.group_size = 64;  // the config says 128: ceil(64 / 128) = 1 group, as AutoGPTQ sizes it
  IntQuantLinear q = RandomLinear(rng, s);
  auto back = RoundTrip(q, Gptq(4, 128, CheckpointFormat::kGptqV2, false, false), dir);
  ASSERT_TRUE(back.ok()) << back.status().message();
  testing::ExpectSameLinear(q, *back);
  EXPECT_TRUE(CheckIntQuantLinear(*back, "m").ok());
}

TEST(Gptq, OtherPackWidthsRoundTrip) {
  testing::TempDir dir;
  std::mt19937 rng(3);
  for (int bits : {2, 4, 8}) {
    for (int w : {8, 16, 64}) {
      if (bits > w) continue;
      LinearSpec s;
      s.bits = bits;
      s.rows = 64;
      s.cols = 192;
      s.group_size = 64;
      s.act_order = true;
      IntQuantLinear q = RandomLinear(rng, s);
      QuantConfig cfg = Gptq(bits, 64, CheckpointFormat::kGptq, false, true, w);
      cfg.v1_zeros = V1Zeros::kGptqModel;
      auto back = RoundTrip(q, cfg, dir);
      ASSERT_TRUE(back.ok()) << back.status().message();
      testing::ExpectSameLinear(q, *back);
    }
  }
}

// Reads the raw words of a written tensor.
std::vector<uint32_t> Words(const SafetensorsFile& f, const std::string& name) {
  const StTensor* t = f.Find(name);
  std::vector<uint32_t> w(t->data.size() / 4);
  std::memcpy(w.data(), t->data.data(), t->data.size());
  return w;
}

TEST(Gptq, SymmetricFourBitV1ZerosAre0x77777777) {
  testing::TempDir dir;
  std::mt19937 rng(4);
  LinearSpec s;
  s.sym = true;
  s.rows = 16;
  IntQuantLinear q = RandomLinear(rng, s);
  for (CheckpointFormat fmt : {CheckpointFormat::kGptq, CheckpointFormat::kGptqV2}) {
    SafetensorsWriter w;
    ASSERT_TRUE(AddGptqLinear(w, "m", q, Gptq(4, 32, fmt, true, false)).ok());
    ASSERT_TRUE(w.Write(dir.Path("s.safetensors")).ok());
    auto f = SafetensorsFile::Open(dir.Path("s.safetensors"));
    ASSERT_TRUE(f.ok());
    const uint32_t want = fmt == CheckpointFormat::kGptq ? 0x77777777u : 0x88888888u;
    for (uint32_t word : Words(*f, "m.qzeros")) EXPECT_EQ(word, want);
    EXPECT_EQ(f->Find("m.qzeros")->shape, (std::vector<uint64_t>{2, 2}));
    EXPECT_EQ(f->Find("m.qweight")->shape, (std::vector<uint64_t>{8, 16}));
    EXPECT_EQ(f->Find("m.qweight")->dtype, StDtype::kI32);
    EXPECT_EQ(f->Find("m.g_idx")->dtype, StDtype::kI32);
    EXPECT_EQ(f->Find("m.scales")->dtype, StDtype::kF16);
  }
}

TEST(Gptq, PackedTensorsAreAutoGptqsBuffers) {
  std::mt19937 rng(6);
  LinearSpec s;
  s.bits = 3;
  s.rows = 64;
  s.cols = 96;
  s.bias = true;
  auto packed = PackQuantizedLinear("model.layers.0.mlp.up_proj", RandomLinear(rng, s),
                                    Gptq(3, 32, CheckpointFormat::kGptq, false, false));
  ASSERT_TRUE(packed.ok()) << packed.status().message();
  ASSERT_EQ(packed->size(), 5u);
  const std::vector<std::pair<std::string, std::vector<uint64_t>>> want = {
      {"qweight", {9, 64}}, {"qzeros", {3, 6}}, {"scales", {3, 64}}, {"g_idx", {96}}, {"bias", {64}}};
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ((*packed)[i].name, "model.layers.0.mlp.up_proj." + want[i].first);
    EXPECT_EQ((*packed)[i].shape, want[i].second) << want[i].first;
    uint64_t n = 1;
    for (uint64_t d : (*packed)[i].shape) n *= d;
    EXPECT_EQ((*packed)[i].bytes.size(), n * StDtypeSize((*packed)[i].dtype)) << want[i].first;
  }
  EXPECT_EQ((*packed)[0].dtype, StDtype::kI32);
  EXPECT_EQ((*packed)[3].dtype, StDtype::kI32);
  EXPECT_EQ((*packed)[4].dtype, StDtype::kF16);
}

TEST(Gptq, QweightWordHoldsEightInputsOfOneOutput) {
  // out 8, in 8, 4-bit, one group: output o's codes are (o + i) % 16 for input i.
  IntQuantLinear q;
  q.rows = 8;
  q.cols = 8;
  q.group_size = 8;
  q.codes.resize(64);
  for (int o = 0; o < 8; ++o) {
    for (int i = 0; i < 8; ++i) q.codes[o * 8 + i] = static_cast<uint8_t>((o + i) % 16);
  }
  q.scales.assign(8, 1.0f);
  q.zeros = {1, 2, 3, 4, 5, 6, 7, 8};
  q.g_idx = MonotoneGIdx(8, 8);
  SafetensorsWriter w;
  ASSERT_TRUE(AddGptqLinear(w, "m", q, Gptq(4, -1, CheckpointFormat::kGptq, false, false)).ok());
  testing::TempDir dir;
  ASSERT_TRUE(w.Write(dir.Path("k.safetensors")).ok());
  auto f = SafetensorsFile::Open(dir.Path("k.safetensors"));
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(Words(*f, "m.qweight")[0], 0x76543210u);  // output 0
  EXPECT_EQ(Words(*f, "m.qweight")[3], 0xA9876543u);  // output 3
  EXPECT_EQ(Words(*f, "m.qzeros")[0], 0x76543210u);   // zeros 1..8 stored minus one
}

// Writes one 4-bit layer whose qzeros word is `word` (8 outputs, 8 inputs, one group).
SafetensorsFile LayerWithZeroWord(const testing::TempDir& dir, uint32_t word) {
  IntQuantLinear q;
  q.rows = 8;
  q.cols = 8;
  q.group_size = 8;
  q.codes.assign(64, 3);
  q.scales.assign(8, 0.5f);
  q.zeros.assign(8, 2);
  q.g_idx = MonotoneGIdx(8, 8);
  SafetensorsWriter w;
  LOWBIT_CHECK(AddGptqLinear(w, "m", q, Gptq(4, -1, CheckpointFormat::kGptqV2, false, false)).ok());
  w.SetMetadata("format", "pt");
  LOWBIT_CHECK(w.Write(dir.Path("z.safetensors")).ok());
  auto bytes = testing::ReadFileBytes(dir.Path("z.safetensors"));
  auto f = SafetensorsFile::Parse(bytes, "z");
  const StTensor* t = f->Find("m.qzeros");
  const size_t off = t->data.data() - bytes.data();
  std::memcpy(bytes.data() + off, &word, 4);
  testing::WriteFileBytes(dir.Path("z.safetensors"), bytes);
  return std::move(SafetensorsFile::Open(dir.Path("z.safetensors")).value());
}

TEST(Gptq, V1ZeroOfZeroFollowsEachReadersRule) {
  testing::TempDir dir;
  // Zeros {0, 5, 1, 1, 1, 1, 1, 1}: GPTQModel writes packed(z) - 0x11111111 = 0x0000003F (field 0
  // borrows from field 1); lowbit writes the same bytes.
  IntQuantLinear q;
  q.rows = 8;
  q.cols = 8;
  q.group_size = 8;
  q.codes.assign(64, 4);
  q.scales.assign(8, 0.25f);
  q.zeros = {0, 5, 1, 1, 1, 1, 1, 1};
  q.g_idx = MonotoneGIdx(8, 8);
  QuantConfig cfg = Gptq(4, -1, CheckpointFormat::kGptq, false, false);
  SafetensorsWriter w;
  ASSERT_TRUE(AddGptqLinear(w, "m", q, cfg).ok());
  ASSERT_TRUE(w.Write(dir.Path("b.safetensors")).ok());
  auto f = SafetensorsFile::Open(dir.Path("b.safetensors"));
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(Words(*f, "m.qzeros")[0], 0x0000003Fu);
  // GPTQModel's rule (word + 0x11111111) gets the zeros back...
  cfg.v1_zeros = V1Zeros::kGptqModel;
  QuantReadNotes notes;
  auto gm = ReadGptqLinear(*f, "m", cfg, 8, 8, &notes);
  ASSERT_TRUE(gm.ok()) << gm.status().message();
  EXPECT_EQ(gm->zeros, q.zeros);
  EXPECT_EQ(notes.v1_all_ones_zero_fields, 1);
  // ...and AutoGPTQ's / vLLM's per-field +1 reads 16 and 4, as those kernels compute.
  cfg.v1_zeros = V1Zeros::kPerField;
  auto pf = ReadGptqLinear(*f, "m", cfg, 8, 8);
  ASSERT_TRUE(pf.ok());
  EXPECT_EQ(pf->zeros, (std::vector<int32_t>{16, 4, 1, 1, 1, 1, 1, 1}));
  EXPECT_EQ(pf->value(0, 0), 0.25f * (4 - 16));
}

TEST(Gptq, AutoGptqAllOnesWordReadsSixteenPerField) {
  testing::TempDir dir;
  // AutoGPTQ's pack ORs uint32(-1) into the word for a zero of 0: every field above it is all ones.
  SafetensorsFile f = LayerWithZeroWord(dir, 0xFFFFFFFFu);
  QuantConfig cfg = Gptq(4, -1, CheckpointFormat::kGptq, false, false);
  auto q = ReadGptqLinear(f, "m", cfg, 8, 8);
  ASSERT_TRUE(q.ok()) << q.status().message();
  EXPECT_EQ(q->zeros, std::vector<int32_t>(8, 16));
  // Reading back per field and writing v1 again is refused: 16 has no encoding both readers agree on.
  SafetensorsWriter w;
  Status s = AddGptqLinear(w, "m", *q, cfg);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("does not fit a 4-bit field"), std::string::npos) << s.message();
}

TEST(Gptq, V2ZerosAreStoredRaw) {
  testing::TempDir dir;
  SafetensorsFile f = LayerWithZeroWord(dir, 0xF0123456u);
  auto q = ReadGptqLinear(f, "m", Gptq(4, -1, CheckpointFormat::kGptqV2, false, false), 8, 8);
  ASSERT_TRUE(q.ok()) << q.status().message();
  EXPECT_EQ(q->zeros, (std::vector<int32_t>{6, 5, 4, 3, 2, 1, 0, 15}));
}

TEST(Gptq, DequantizedValuesFollowTheFormula) {
  std::mt19937 rng(5);
  LinearSpec s;
  s.rows = 32;
  s.cols = 96;
  s.group_size = 32;
  s.act_order = true;
  IntQuantLinear q = RandomLinear(rng, s);
  testing::TempDir dir;
  QuantConfig cfg = Gptq(4, 32, CheckpointFormat::kGptqV2, false, true);
  auto back = RoundTrip(q, cfg, dir);
  ASSERT_TRUE(back.ok());
  // The file's own scales and words, decoded here independently of the reader.
  auto f = SafetensorsFile::Open(dir.Path("rt.safetensors"));
  ASSERT_TRUE(f.ok());
  const StTensor* scales = f->Find("m.scales");
  const StTensor* g_idx = f->Find("m.g_idx");
  const auto qw = Words(*f, "m.qweight");
  const auto qz = Words(*f, "m.qzeros");
  std::vector<float> row(s.cols);
  for (int64_t r = 0; r < s.rows; ++r) {
    back->DequantizeRow(r, row.data());
    for (int64_t c = 0; c < s.cols; ++c) {
      int32_t g;
      std::memcpy(&g, g_idx->data.data() + 4 * c, 4);
      uint16_t h;
      std::memcpy(&h, scales->data.data() + 2 * (g * s.rows + r), 2);
      const int code = (qw[(c / 8) * s.rows + r] >> (4 * (c % 8))) & 15;
      const int zero = (qz[g * (s.rows / 8) + r / 8] >> (4 * (r % 8))) & 15;
      const float want = static_cast<float>(code - zero) * Fp16ToFp32(h);
      ASSERT_EQ(row[c], want) << r << " " << c;
      ASSERT_EQ(back->value(r, c), want);
    }
  }
}

}  // namespace
}  // namespace lowbit

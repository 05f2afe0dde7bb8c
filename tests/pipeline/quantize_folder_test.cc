// `quantize --format gptq|awq`: the folder holds exactly the values the quantizer chose (read back
// with formats/' checkpoint reader, every dequantized weight bit-identical, q/k rows back in Hugging
// Face order), its config says what the flags said, and a failure leaves no folder.
#include "lowbit/pipeline/quantize_folder.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <map>

#include "lowbit/formats/quant_checkpoint.h"
#include "lowbit/formats/quant_config.h"
#include "lowbit/formats/safetensors.h"
#include "lowbit/formats/gguf_reader.h"
#include "lowbit/numeric/dequant.h"
#include "lowbit/pipeline/convert.h"
#include "lowbit/pipeline/row_convert.h"
#include "lowbit/quant/linear_quant.h"
#include "test_data.h"

namespace lowbit {
namespace {

using testing::SharedPath;
namespace fs = std::filesystem;

// GGUF-order float rows of one tensor of a Hugging Face folder's plan.
std::vector<float> PlanRows(const ConversionPlan& plan, const std::string& name, int64_t* rows, int64_t* cols, uint32_t* heads) {
  for (const PlannedTensor& t : plan.tensors) {
    if (t.name != name) continue;
    *rows = static_cast<int64_t>(t.dims[1]);
    *cols = static_cast<int64_t>(t.dims[0]);
    *heads = t.unpermute_heads;
    std::vector<float> v(static_cast<size_t>(*rows * *cols));
    EXPECT_TRUE(ConvertTensorRows(t, GgmlType::kF32, std::span<uint8_t>(reinterpret_cast<uint8_t*>(v.data()), v.size() * 4)).ok());
    return v;
  }
  ADD_FAILURE() << "no tensor " << name;
  return {};
}

void ExpectSameValues(const std::string& folder, const std::string& input, const LinearQuantSpec& spec) {
  auto plan = PlanConversion(input, "");
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  auto cfg = LoadQuantConfig(folder);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  auto st = SafetensorsFile::Open(folder + "/model.safetensors");
  ASSERT_TRUE(st.ok()) << st.status().message();
  const std::pair<const char*, const char*> mats[] = {{"blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj"},
                                                      {"blk.1.attn_k.weight", "model.layers.1.self_attn.k_proj"},
                                                      {"blk.0.attn_v.weight", "model.layers.0.self_attn.v_proj"},
                                                      {"blk.2.ffn_down.weight", "model.layers.2.mlp.down_proj"}};
  for (const auto& [gguf, prefix] : mats) {
    int64_t rows = 0, cols = 0;
    uint32_t heads = 0;
    const std::vector<float> w = PlanRows(*plan, gguf, &rows, &cols, &heads);
    auto expect = QuantizeLinear(w.data(), rows, cols, spec);
    ASSERT_TRUE(expect.ok()) << expect.status().message();
    auto got = ReadQuantizedLinear(TensorSet(*st), prefix, *cfg, rows, cols);
    ASSERT_TRUE(got.ok()) << prefix << ": " << got.status().message();
    std::vector<float> row(static_cast<size_t>(cols));
    int64_t differ = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t hf = heads ? static_cast<int64_t>(UnpermuteSourceRow(static_cast<uint64_t>(r), static_cast<uint64_t>(rows), heads)) : r;
      got->DequantizeRow(hf, row.data());
      for (int64_t c = 0; c < cols; ++c) {
        const float e = expect->Value(r, c);
        differ += std::memcmp(&e, &row[c], 4) != 0;
      }
    }
    EXPECT_EQ(differ, 0) << prefix << ": values differ from the quantizer's";
  }
}

TEST(QuantizeFolder, RtnGptqFolderReadsBackBitIdentical) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  const std::string in = SharedPath("models/stories5M/hf-f32");
  for (bool sym : {true, false}) {
    const std::string out = dir.Path(sym ? "sym" : "asym");
    QuantizeOptions o{.input = in, .output = out, .threads = 2};
    FolderQuantOptions f{.format = "gptq", .bits = 4, .group_size = 64, .sym = sym};
    auto r = QuantizeToFolder(o, f);
    ASSERT_TRUE(r.ok()) << r.status().message();
    for (const char* file : {"config.json", "quantize_config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json"}) {
      EXPECT_TRUE(fs::exists(fs::path(out) / file)) << file;
    }
    auto cfg = LoadQuantConfig(out);
    ASSERT_TRUE(cfg.ok()) << cfg.status().message();
    EXPECT_EQ(cfg->bits, 4);
    EXPECT_EQ(cfg->group_size, 64);
    EXPECT_EQ(cfg->sym, sym);
    ExpectSameValues(out, in, LinearQuantSpec{.bits = 4, .sym = sym, .group_size = 64});
  }
  // AutoGPTQ's MSE range search as the group range.
  const std::string mse = dir.Path("mse");
  ASSERT_TRUE(QuantizeToFolder(QuantizeOptions{.input = in, .output = mse, .threads = 2},
                               FolderQuantOptions{.format = "gptq", .bits = 3, .group_size = 128, .sym = false, .range = "mse"})
                  .ok());
  ExpectSameValues(mse, in, LinearQuantSpec{.bits = 3, .sym = false, .group_size = 128, .range = QuantRange::kMse});
  // AWQ's GEMM layout with the same RTN values (asymmetric, AutoAWQ's conventions).
  const std::string awq = dir.Path("awq");
  auto r = QuantizeToFolder(QuantizeOptions{.input = in, .output = awq, .threads = 2}, FolderQuantOptions{.format = "awq", .group_size = 32});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_FALSE(fs::exists(fs::path(awq) / "quantize_config.json"));
  ExpectSameValues(awq, in, LinearQuantSpec{.bits = 4, .sym = false, .group_size = 32, .convention = QuantConvention::kAwq});
}

// The acceptance round trip: a symmetric 4-bit g128 folder written by lowbit, read back, then
// converted to GGUF (Q4_0 with no rounding): every layer matrix dequantizes to the same bits.
TEST(QuantizeFolder, Sym4G128FolderToGgufIsBitIdentical) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  const std::string folder = dir.Path("w4"), gguf = dir.Path("w4.gguf");
  ASSERT_TRUE(QuantizeToFolder({.input = SharedPath("models/stories5M/hf-f32"), .output = folder, .threads = 2},
                               {.format = "gptq", .bits = 4, .group_size = 128, .sym = true}).ok());
  std::vector<std::string> notes;
  Status c = Convert(ConvertOptions{.input = folder, .output = gguf, .notes = &notes});
  ASSERT_TRUE(c.ok()) << c.message();
  auto g = GgufFile::Open(gguf);
  ASSERT_TRUE(g.ok()) << g.status().message();
  auto cfg = LoadQuantConfig(folder);
  auto st = SafetensorsFile::Open(folder + "/model.safetensors");
  ASSERT_TRUE(cfg.ok() && st.ok());
  int64_t matrices = 0, differ = 0;
  Status s = ForEachQuantizedLinear(TensorSet(*st), *cfg, [&](const std::string& prefix, IntQuantLinear&& q) -> Status {
    // "model.layers.N.self_attn.q_proj" -> "blk.N.attn_q.weight"
    const size_t a = std::string("model.layers.").size(), b = prefix.find('.', a);
    const std::string l = prefix.substr(a, b - a), what = prefix.substr(b + 1);
    const std::map<std::string, std::pair<std::string, uint32_t>> names = {
        {"self_attn.q_proj", {"attn_q", 8}},  // stories5M: 8 query heads, 4 KV heads
        {"self_attn.k_proj", {"attn_k", 4}}, {"self_attn.v_proj", {"attn_v", 0}},
        {"self_attn.o_proj", {"attn_output", 0}}, {"mlp.gate_proj", {"ffn_gate", 0}}, {"mlp.up_proj", {"ffn_up", 0}},
        {"mlp.down_proj", {"ffn_down", 0}}};
    const auto& [gname, heads] = names.at(what);
    const GgufTensorInfo* t = g->FindTensor("blk." + l + "." + gname + ".weight");
    if (t == nullptr) return Errorf("no {}", gname);
    EXPECT_EQ(t->type, GgmlType::kQ4_0) << prefix;
    const uint64_t row_bytes = t->n_bytes / static_cast<uint64_t>(q.rows);
    std::vector<float> want(static_cast<size_t>(q.cols)), got(static_cast<size_t>(q.cols));
    for (int64_t r = 0; r < q.rows; ++r) {
      const int64_t hf = heads ? static_cast<int64_t>(UnpermuteSourceRow(static_cast<uint64_t>(r), static_cast<uint64_t>(q.rows), heads)) : r;
      q.DequantizeRow(hf, want.data());
      ToFloatFor(t->type)(t->data + static_cast<uint64_t>(r) * row_bytes, got.data(), q.cols);
      differ += std::memcmp(want.data(), got.data(), want.size() * 4) != 0;
    }
    ++matrices;
    return OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(matrices, 7 * 6);
  EXPECT_EQ(differ, 0) << "rows whose GGUF values differ from the folder's";
}

TEST(QuantizeFolder, GptqActOrderFolderIsValid) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  const std::string out = dir.Path("gptq");
  QuantizeOptions o{.input = SharedPath("models/stories5M/hf-f32"), .output = out, .threads = 2, .method = QuantizeMethod::kGptq};
  o.calib = CalibrationOptions{.text_path = SharedPath("data/tinystories/TinyStoriesV2-GPT4-valid.first100.txt"), .nsamples = 8, .seqlen = 64, .seed = 1};
  auto r = QuantizeToFolder(o, FolderQuantOptions{.format = "gptq", .bits = 4, .group_size = 16, .sym = false, .act_order = true});  // (stories260K's FFN of 172 cannot be packed)
  ASSERT_TRUE(r.ok()) << r.status().message();
  auto cfg = LoadQuantConfig(out);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_TRUE(cfg->desc_act);
  auto st = SafetensorsFile::Open(out + "/model.safetensors");
  ASSERT_TRUE(st.ok());
  int64_t linears = 0, permuted = 0;
  Status s = ForEachQuantizedLinear(TensorSet(*st), *cfg, [&](const std::string&, IntQuantLinear&& q) -> Status {
    ++linears;
    permuted += !q.monotone();
    return OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(linears, 7 * 6);  // stories5M: 6 layers
  EXPECT_GT(permuted, 0);     // act-order's g_idx
}

TEST(QuantizeFolder, BadRequestsLeaveNothing) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  const std::string in = SharedPath("models/stories260K/hf-f32"), out = dir.Path("out");
  auto fails = [&](QuantizeOptions o, FolderQuantOptions f, const std::string& says) {
    o.output = out;
    auto r = QuantizeToFolder(o, f);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find(says), std::string::npos) << r.status().message();
    EXPECT_TRUE(fs::is_empty(dir.Path(""))) << "left files behind";
  };
  fails({.input = SharedPath("models/stories260K/stories260K-f32.gguf")}, {}, "reads one");
  fails({.input = in}, {.format = "awq", .sym = true}, "drop --sym");
  fails({.input = in}, {.format = "awq", .group_size = 48}, "does not divide");  // AWQ needs whole groups
  fails({.input = in, .method = QuantizeMethod::kGptq}, {.format = "gptq"}, "--calib");
  // A quantized folder as input: refused, not rounded twice.
  testing::TempDir other;
  const std::string gptq = other.Path("gptq-in");
  ASSERT_TRUE(QuantizeToFolder({.input = SharedPath("models/stories5M/hf-f32"), .output = gptq}, {}).ok());
  fails({.input = gptq}, {}, "already quantized");
  ASSERT_TRUE(fs::create_directories(out));
  auto r = QuantizeToFolder({.input = in, .output = out}, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("already exists"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace lowbit

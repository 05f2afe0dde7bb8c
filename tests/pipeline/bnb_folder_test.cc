// bitsandbytes folders (`quantize --format bnb`, `run|perplexity|bench -m DIR`, `convert DIR`):
//  - the folder holds exactly the bytes bitsandbytes' quantizers give for the source weights (codes,
//    absmax or its double quantization, quant state, SCB), and a second run writes the same bytes;
//  - read back, every linear gives the values written, bit for bit;
//  - OpenModel runs 4-bit linears natively (NF4G* / FP4G*) with the same weights as the folder
//    converted to F32, and logits that differ only by float summation order;
//  - `convert` without --outtype puts 4-bit linears into IQ4_NL (int8 into Q8_0) and reports the error;
//  - `--gptq` (NF4 codes chosen by GPTQ) writes the same folder twice, valid bitsandbytes tensors, whose
//    model is closer to the float one than the plain quantizer's; bad combinations are refused.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "lowbit/eval/perplexity.h"
#include "lowbit/formats/bnb_checkpoint.h"
#include "lowbit/formats/gguf_reader.h"
#include "lowbit/formats/gguf_vocab.h"
#include "lowbit/formats/hf.h"
#include "lowbit/formats/safetensors.h"
#include "lowbit/model/llama.h"
#include "lowbit/numeric/dequant.h"
#include "lowbit/pipeline/bnb_linear.h"
#include "lowbit/pipeline/convert.h"
#include "lowbit/pipeline/model_source.h"
#include "lowbit/pipeline/quantize_bnb.h"
#include "lowbit/quant/bnb_quant.h"
#include "test_data.h"

namespace lowbit {
namespace {

std::string Source() { return testing::SharedPath("models/stories5M/hf-f32"); }

const char* const kModules[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};

Expected<QuantizeReport> Write(const std::string& out, const BnbFolderOptions& f, const std::string& calib = "") {
  QuantizeOptions o;
  o.input = Source();
  o.output = out;
  o.calib.text_path = calib;
  o.calib.nsamples = 16;  // GPTQ: a small calibration keeps the test quick
  o.calib.seqlen = 128;
  o.threads = 2;
  return QuantizeToBnbFolder(o, f);
}

std::vector<uint8_t> Bytes(std::span<const float> v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// Every linear of the folder against bitsandbytes' quantizers run on the source weights.
void CheckAgainstSource(const std::string& dir, const BnbFolderOptions& f) {
  auto src = SafetensorsFile::Open(Source() + "/model.safetensors");
  ASSERT_TRUE(src.ok()) << src.status().message();
  auto got = SafetensorsFile::Open(dir + "/model.safetensors");
  ASSERT_TRUE(got.ok()) << got.status().message();
  const TensorSet ts(*got);
  int linears = 0;
  for (int l = 0; l < 6; ++l) {
    for (const char* m : kModules) {
      const std::string prefix = "model.layers." + std::to_string(l) + "." + m;
      const StTensor* w = src->Find(prefix + ".weight");
      ASSERT_NE(w, nullptr) << prefix;
      const auto rows = static_cast<int64_t>(w->shape[0]), cols = static_cast<int64_t>(w->shape[1]), n = rows * cols;
      const auto* x = reinterpret_cast<const float*>(w->data.data());
      if (f.method == "int8") {
        std::vector<int8_t> q(static_cast<size_t>(n));
        const std::vector<float> scb = QuantizeInt8Rows(x, rows, cols, q.data());
        auto L = ReadBnb8Linear(ts, prefix, rows, cols);
        ASSERT_TRUE(L.ok()) << L.status().message();
        ASSERT_EQ(std::memcmp(L->q.data(), q.data(), q.size()), 0) << prefix;
        EXPECT_EQ(L->scb, scb) << prefix;
        ++linears;
        continue;
      }
      const Bnb4Type t = f.method == "fp4" ? Bnb4Type::kFp4 : Bnb4Type::kNf4;
      std::vector<uint8_t> packed(static_cast<size_t>((n + 1) / 2));
      std::vector<float> absmax(static_cast<size_t>(BnbBlockCount(n, f.block_size)));
      QuantizeBnb4(t, x, n, f.block_size, packed.data(), absmax.data());
      std::vector<float> decoded = absmax;
      const StTensor* am = got->Find(prefix + ".weight.absmax");
      ASSERT_NE(am, nullptr) << prefix;
      if (f.double_quant) {
        const BnbNestedAbsmax dq = DoubleQuantizeAbsmax(absmax);
        DecodeNestedAbsmax(dq.q, dq.nested_absmax, dq.offset, decoded);
        EXPECT_EQ(std::vector<uint8_t>(am->data.begin(), am->data.end()), dq.q) << prefix;
        const StTensor* na = got->Find(prefix + ".weight.nested_absmax");
        ASSERT_NE(na, nullptr);
        EXPECT_EQ(std::vector<uint8_t>(na->data.begin(), na->data.end()), Bytes(dq.nested_absmax)) << prefix;
      } else {
        EXPECT_EQ(std::vector<uint8_t>(am->data.begin(), am->data.end()), Bytes(absmax)) << prefix;
      }
      auto L = ReadBnb4Linear(ts, prefix, rows, cols);
      ASSERT_TRUE(L.ok()) << L.status().message();
      ASSERT_EQ(std::vector<uint8_t>(L->packed.begin(), L->packed.end()), packed) << prefix;
      EXPECT_EQ(L->state.blocksize, f.block_size);
      EXPECT_EQ(L->state.nested, f.double_quant);
      // Read back: the absmax values decode bit for bit to what the writer used.
      ASSERT_EQ(Bytes(L->absmax), Bytes(decoded)) << prefix;
      ++linears;
    }
  }
  EXPECT_EQ(linears, 42);
}

class BnbFolderTest : public ::testing::TestWithParam<BnbFolderOptions> {};

TEST_P(BnbFolderTest, HoldsBitsandbytesBytesAndIsDeterministic) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  const BnbFolderOptions f = GetParam();
  auto r = Write(dir.Path("a"), f);
  ASSERT_TRUE(r.ok()) << r.status().message();
  CheckAgainstSource(dir.Path("a"), f);
  ASSERT_TRUE(Write(dir.Path("b"), f).ok());
  EXPECT_EQ(testing::ReadFileBytes(dir.Path("a") + "/model.safetensors"), testing::ReadFileBytes(dir.Path("b") + "/model.safetensors"));
  EXPECT_EQ(testing::ReadFileBytes(dir.Path("a") + "/config.json"), testing::ReadFileBytes(dir.Path("b") + "/config.json"));
  // Nothing but the finished folder is left.
  EXPECT_EQ(dir.List().size(), 2u);
}

INSTANTIATE_TEST_SUITE_P(Methods, BnbFolderTest,
                         ::testing::Values(BnbFolderOptions{"nf4", true, 64, 6.0}, BnbFolderOptions{"nf4", false, 128, 6.0},
                                           BnbFolderOptions{"fp4", true, 32, 6.0}, BnbFolderOptions{"int8", false, 64, 6.0}),
                         [](const auto& p) {
                           return p.param.method + (p.param.double_quant ? "Dq" : "") + "B" + std::to_string(p.param.block_size);
                         });

std::vector<float> AllLogits(const GgufFile& g, const std::vector<int32_t>& tokens) {
  auto m = LlamaModel::Load(g);
  EXPECT_TRUE(m.ok()) << m.status().message();
  if (!m.ok()) return {};
  LlamaSession s(*m, 64, 2);
  const float* l = s.Forward(tokens, 0, /*all_logits=*/true);
  return std::vector<float>(l, l + tokens.size() * m->config().n_vocab);
}

// Every row of the native tensor `qt` dequantizes to the F32 tensor `rt`'s row bit for bit.
void ExpectSameRows(const GgufTensorInfo& qt, const GgufTensorInfo& rt) {
  const auto cols = static_cast<int64_t>(rt.dims[0]);
  std::vector<float> row(static_cast<size_t>(cols));
  const uint64_t rb = *RowBytes(qt.type, static_cast<uint64_t>(cols));
  for (int64_t r = 0; r < static_cast<int64_t>(rt.dims[1]); ++r) {
    ASSERT_TRUE(DequantizeRow(qt.type, qt.data + r * rb, row.data(), cols));
    ASSERT_EQ(std::memcmp(row.data(), reinterpret_cast<const float*>(rt.data) + r * cols, cols * 4), 0) << rt.name << " row " << r;
  }
}

// Writes folder `f` at dir/q and its dequantized weights as dir/ref.gguf (F32): the reference.
void WriteWithReference(const testing::TempDir& dir, const BnbFolderOptions& f) {
  ASSERT_TRUE(Write(dir.Path("q"), f).ok());
  ConvertOptions co;
  co.input = dir.Path("q");
  co.output = dir.Path("ref.gguf");
  co.dequantize = true;
  co.outtype = GgmlType::kF32;
  ASSERT_TRUE(Convert(co).ok());
}

void CheckRunsNatively(const BnbFolderOptions& f, GgmlType want_type) {
  testing::TempDir dir;
  ASSERT_NO_FATAL_FAILURE(WriteWithReference(dir, f));
  auto qg = OpenModel(dir.Path("q"));
  ASSERT_TRUE(qg.ok()) << qg.status().message();
  // The forward reads plain tensors (norms) as floats: aligned even where the safetensors file has
  // them at an odd offset, after an odd-sized uint8 tensor (a misaligned load, caught by UBSan).
  for (const GgufTensorInfo& t : qg->tensors()) {
    if (t.type == GgmlType::kF32 || t.type == GgmlType::kF16 || t.type == GgmlType::kBF16) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % 4, 0u) << t.name;
    }
  }
  auto rg = GgufFile::Open(dir.Path("ref.gguf"));
  ASSERT_TRUE(rg.ok()) << rg.status().message();
  int native = 0;
  for (const GgufTensorInfo& rt : rg->tensors()) {
    if (rt.n_dims != 2 || !rt.name.starts_with("blk.")) continue;
    const GgufTensorInfo* qt = qg->FindTensor(rt.name);
    ASSERT_NE(qt, nullptr) << rt.name;
    EXPECT_EQ(qt->type, want_type) << rt.name;
    native += qt->type == want_type;
    ExpectSameRows(*qt, rt);
  }
  EXPECT_EQ(native, 42);
  const std::vector<int32_t> tokens = {1, 403, 407, 261, 378, 395, 302, 418, 267, 268, 292, 371, 259, 286, 303, 287};
  const std::vector<float> lq = AllLogits(*qg, tokens), lr = AllLogits(*rg, tokens);
  ASSERT_EQ(lq.size(), lr.size());
  double max_abs = 0, max_ref = 0;
  for (size_t i = 0; i < lq.size(); ++i) {
    max_abs = std::max(max_abs, std::fabs(static_cast<double>(lq[i]) - lr[i]));
    max_ref = std::max(max_ref, std::fabs(static_cast<double>(lr[i])));
  }
  // The same weight values; the reference runs F32 activations, the folder F32 (FP4G32) or int16 ones
  // (NF4G64x2: levels and activations rounded to 1 / 32766 of their block's absmax, kernels/dot_bnb.h).
  EXPECT_LT(max_abs, 1e-4 * max_ref) << max_abs << " of " << max_ref;
}

TEST(BnbFolderRun, Nf4DoubleQuantRunsNatively) {
  LOWBIT_REQUIRE_SHARED();
  CheckRunsNatively({"nf4", true, 64, 6.0}, GgmlType::kNF4G64x2);
}

TEST(BnbFolderRun, Fp4Block32RunsNatively) {
  LOWBIT_REQUIRE_SHARED();
  CheckRunsNatively({"fp4", false, 32, 6.0}, GgmlType::kFP4G32);
}

// LLM.int8 runs natively (I8R32 for the 288-column rows, I8R256 for the 768-column ones) on the
// folder's own codes and SCB; the threshold comes from the folder (llm_int8_threshold) or the caller;
// a threshold no activation reaches gives plain int8's logits bit for bit; the logits stay close to
// those of the dequantized weights in float.
TEST(BnbFolderRun, Int8RunsNativelyWithOutliers) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  ASSERT_NO_FATAL_FAILURE(WriteWithReference(dir, {"int8", false, 64, 6.0}));
  auto rg = GgufFile::Open(dir.Path("ref.gguf"));
  ASSERT_TRUE(rg.ok()) << rg.status().message();
  auto qg = OpenModel(dir.Path("q"));
  ASSERT_TRUE(qg.ok()) << qg.status().message();
  EXPECT_EQ(*qg->GetFloat(kInt8ThresholdKey), 6.0);
  int native = 0;
  for (const GgufTensorInfo& rt : rg->tensors()) {
    if (rt.n_dims != 2 || !rt.name.starts_with("blk.")) continue;
    const GgufTensorInfo* qt = qg->FindTensor(rt.name);
    ASSERT_NE(qt, nullptr) << rt.name;
    const auto cols = static_cast<int64_t>(rt.dims[0]);
    EXPECT_EQ(qt->type, cols % 256 == 0 ? GgmlType::kI8R256 : GgmlType::kI8R32) << rt.name;
    native += IsInt8RowType(qt->type);
    ExpectSameRows(*qt, rt);
  }
  EXPECT_EQ(native, 42);
  {
    auto m = LlamaModel::Load(*qg);
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(m->layers[0].wq.outlier_threshold, 6.0f);
    EXPECT_EQ(m->layers[0].attn_norm.outlier_threshold, 0.0f);
  }
  const std::vector<int32_t> tokens = {1, 403, 407, 261, 378, 395, 302, 418, 267, 268, 292, 371, 259, 286, 303, 287};
  auto plain = OpenModel(dir.Path("q"), Residency::kMapped, "", 0.0);
  auto huge = OpenModel(dir.Path("q"), Residency::kMapped, "", 1e30);
  auto low = OpenModel(dir.Path("q"), Residency::kMapped, "", 1.0);
  ASSERT_TRUE(plain.ok() && huge.ok() && low.ok());
  const std::vector<float> lq = AllLogits(*qg, tokens), lp = AllLogits(*plain, tokens), lh = AllLogits(*huge, tokens),
                           ll = AllLogits(*low, tokens), lr = AllLogits(*rg, tokens);
  ASSERT_EQ(lq.size(), lr.size());
  EXPECT_EQ(std::memcmp(lh.data(), lp.data(), lp.size() * 4), 0) << "a threshold nothing reaches is plain int8";
  EXPECT_NE(std::memcmp(ll.data(), lp.data(), lp.size() * 4), 0) << "threshold 1 takes some columns to float";
  auto max_diff = [&](const std::vector<float>& a) {
    double d = 0, ref = 0;
    for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(static_cast<double>(a[i]) - lr[i])), ref = std::max(ref, std::fabs(static_cast<double>(lr[i])));
    return d / ref;
  };
  // int8 activations (one scale per token) on top of the weights' own rounding. Largest logit
  // difference over the largest logit, measured: 0.016 at T = 6, 0.020 at T = 0, 0.006 at T = 1.
  const double dq = max_diff(lq), dp = max_diff(lp), dl = max_diff(ll);
  EXPECT_LT(dq, 0.03);
  EXPECT_LT(dq, dp) << "T = 6 takes this text's large columns to float: closer to float than plain int8";
  EXPECT_LT(dl, dq) << "T = 1 takes more columns to float: closer still";
}

TEST(BnbFolderConvert, ClosestGgmlTypesWithTheErrorAdded) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  ASSERT_TRUE(Write(dir.Path("q"), {"nf4", true, 64, 6.0}).ok());
  std::vector<std::string> notes;
  ConvertOptions co;
  co.input = dir.Path("q");
  co.output = dir.Path("q.gguf");
  co.notes = &notes;
  auto s = Convert(co);
  ASSERT_TRUE(s.ok()) << s.message();
  auto g = GgufFile::Open(dir.Path("q.gguf"));
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->FindTensor("blk.0.attn_q.weight")->type, GgmlType::kIQ4_NL);
  EXPECT_EQ(g->FindTensor("token_embd.weight")->type, GgmlType::kF32);
  ASSERT_FALSE(notes.empty());
  EXPECT_NE(notes.back().find("42 IQ4_NL"), std::string::npos) << notes.back();
  EXPECT_NE(notes.front().find("added error"), std::string::npos) << notes.front();
}

TEST(BnbFolderRead, BrokenQuantStateNamesTensorAndField) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  ASSERT_TRUE(Write(dir.Path("q"), {"nf4", false, 64, 6.0}).ok());
  // Rewrite one quant state with a block size the tensors disagree with.
  auto f = SafetensorsFile::Open(dir.Path("q") + "/model.safetensors");
  ASSERT_TRUE(f.ok());
  SafetensorsWriter w;
  const std::string bad_name = "model.layers.2.mlp.up_proj.weight.quant_state.bitsandbytes__nf4";
  const std::string bad = R"({"quant_type": "nf4", "blocksize": 128, "dtype": "float32", "shape": [768, 256]})";
  for (const StTensor& t : f->tensors()) {
    std::vector<uint8_t> bytes(t.data.begin(), t.data.end());
    std::vector<uint64_t> shape = t.shape;
    if (t.name == bad_name) bytes.assign(bad.begin(), bad.end()), shape = {bad.size()};
    ASSERT_TRUE(w.Add(t.name, t.dtype, shape, [bytes](std::span<uint8_t> d) {
                   std::memcpy(d.data(), bytes.data(), d.size());
                   return OkStatus();
                 }).ok());
  }
  ASSERT_TRUE(w.Write(dir.Path("q") + "/model.safetensors.new").ok());
  std::filesystem::rename(dir.Path("q") + "/model.safetensors.new", dir.Path("q") + "/model.safetensors");
  auto g = OpenModel(dir.Path("q"));
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("model.layers.2.mlp.up_proj.weight.absmax: shape [3072], but 196608 elements in blocks of 128 needs [1536]"),
            std::string::npos)
      << g.status().message();
}

// Perplexity of an opened model (OpenModel) on `text`, as `lowbit perplexity` runs it (po.save_logits /
// po.kl_base: the reference distributions written, or compared with).
Expected<PerplexityResult> Score(const GgufFile& g, const std::string& text, const PerplexityOptions& po) {
  LOWBIT_ASSIGN_OR_RETURN(LlamaModel m, LlamaModel::Load(g));
  LOWBIT_ASSIGN_OR_RETURN(Vocab v, VocabFromGguf(g));
  return Perplexity(m, v, text, po);
}

// GPTQ's NF4 codes (calibrated on TinyStories-valid.hf-head.txt, scored on a story of the GPT-4
// validation set, which shares no line with it): a valid double-quantized bitsandbytes folder,
// the same bytes twice, and a model closer to the float one than the plain (absmax) quantizer's.
TEST(BnbFolderGptq, Nf4CodesFromGptqBeatThePlainQuantizer) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  const std::string calib = testing::SharedPath("data/tinystories/TinyStories-valid.hf-head.txt");
  BnbFolderOptions f{"nf4", true, 64, 6.0};
  ASSERT_TRUE(Write(dir.Path("rtn"), f).ok());
  f.gptq = true;
  auto r = Write(dir.Path("a"), f, calib);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->calibration.tokens, 16 * 128);
  ASSERT_TRUE(Write(dir.Path("b"), f, calib).ok());
  EXPECT_EQ(testing::ReadFileBytes(dir.Path("a") + "/model.safetensors"), testing::ReadFileBytes(dir.Path("b") + "/model.safetensors"));
  // Every linear reads back as a double-quantized NF4 tensor of block 64.
  auto source = SafetensorsFile::Open(Source() + "/model.safetensors");
  auto got = SafetensorsFile::Open(dir.Path("a") + "/model.safetensors");
  ASSERT_TRUE(source.ok() && got.ok());
  const TensorSet ts(*got);
  for (int l = 0; l < 6; ++l) {
    for (const char* m : kModules) {
      const std::string prefix = "model.layers." + std::to_string(l) + "." + m;
      const StTensor* w = source->Find(prefix + ".weight");
      ASSERT_NE(w, nullptr) << prefix;
      auto L = ReadBnb4Linear(ts, prefix, static_cast<int64_t>(w->shape[0]), static_cast<int64_t>(w->shape[1]));
      ASSERT_TRUE(L.ok()) << L.status().message();
      EXPECT_TRUE(L->state.nested && L->state.blocksize == 64 && L->state.type == Bnb4Type::kNf4) << prefix;
    }
  }
  auto src = OpenModel(Source());
  auto rtn = OpenModel(dir.Path("rtn"));
  auto gq = OpenModel(dir.Path("a"));
  ASSERT_TRUE(src.ok() && rtn.ok() && gq.ok());
  auto text = ReadTextFile(testing::SharedPath("data/tinystories/TinyStoriesV2-GPT4-valid.first100.txt"));
  ASSERT_TRUE(text.ok());
  // KL against the float model, as `lowbit perplexity --kl-divergence` measures it (2 chunks of 256,
  // the model's context, as bench/issue20_bnb.sh).
  PerplexityOptions po{.ctx = 256, .chunks = 2, .threads = 2, .save_logits = dir.Path("base.bin")};
  ASSERT_TRUE(Score(*src, *text, po).ok());
  po.save_logits.clear();
  po.kl_base = dir.Path("base.bin");
  auto pr = Score(*rtn, *text, po), pg = Score(*gq, *text, po);
  ASSERT_TRUE(pr.ok() && pg.ok());
  ASSERT_TRUE(pr->has_kl && pg->has_kl);
  const double kr = pr->kl.mean, kg = pg->kl.mean;
  // Measured on stories5M with the full test text (bench/issue20_bnb.sh): 0.0053 against 0.0092.
  EXPECT_LT(kg, 0.85 * kr) << "GPTQ " << kg << ", plain " << kr;
}

TEST(BnbFolderGptq, RefusesWhatItCannotDo) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  const std::string calib = testing::SharedPath("data/tinystories/TinyStories-valid.hf-head.txt");
  const auto error = [&](BnbFolderOptions f, const std::string& c) {
    f.gptq = true;
    auto r = Write(dir.Path("x"), f, c);
    return r.ok() ? std::string("ok") : std::string(r.status().message());
  };
  EXPECT_EQ(error({"fp4", true, 64, 6.0}, calib), "--gptq chooses NF4 codes: it takes --method nf4, not fp4");
  EXPECT_EQ(error({"int8", false, 64, 6.0}, calib), "--gptq chooses NF4 codes: it takes --method nf4, not int8");
  EXPECT_EQ(error({"nf4", true, 128, 6.0}, calib), "--gptq takes --block-size 32 or 64 (got 128)");
  EXPECT_EQ(error({"nf4", true, 64, 6.0}, ""), "--gptq needs calibration text: --calib FILE");
  EXPECT_TRUE(dir.List().empty()) << "nothing written";
}

}  // namespace
}  // namespace lowbit

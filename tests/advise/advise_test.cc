// The advisor's parts: flag values, the cost model's arithmetic, planned files (sizes equal to what
// `lowbit quantize` and `lowbit synth` write, models loaded from headers alone), the report's JSON
// keys, the recommendation rule, and the memory guard.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>

#include "lowbit/advise/advisor.h"
#include "lowbit/advise/guard.h"
#include "lowbit/base/memory_info.h"
#include "lowbit/formats/gguf_writer.h"
#include "lowbit/pipeline/llama_metadata.h"
#include "lowbit/pipeline/quantize.h"
#include "test_data.h"
#include "advise/test_speed.h"
#include "advise/zero_llama.h"

namespace lowbit {
namespace {

TEST(AdviseUnits, ParsesSizesRatesAndTimes) {
  EXPECT_EQ(*ParseBytes("16G", "--ram"), uint64_t{16} << 30);
  EXPECT_EQ(*ParseBytes("512M", "--ram"), uint64_t{512} << 20);
  EXPECT_EQ(*ParseBytes("1.5T", "--ram"), uint64_t{3} << 39);
  EXPECT_EQ(*ParseBytes("24GiB", "--vram"), uint64_t{24} << 30);
  EXPECT_EQ(*ParseBytes("4096", "--ram"), 4096u);
  for (const char* bad : {"", "abc", "16X", "-1G", "0", "1e30G", "nanG"}) {
    auto r = ParseBytes(bad, "--ram");
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.status().message().find("--ram"), std::string::npos);
    }
  }
  EXPECT_DOUBLE_EQ(*ParseBytesPerSecond("60GB/s", "--bandwidth"), 60e9);
  EXPECT_DOUBLE_EQ(*ParseBytesPerSecond("936 GB/s", "--bandwidth"), 936e9);
  EXPECT_DOUBLE_EQ(*ParseBytesPerSecond("10Gbit", "--net"), 1.25e9);
  EXPECT_DOUBLE_EQ(*ParseBytesPerSecond("100Mbit/s", "--net"), 12.5e6);
  for (const char* bad : {"60", "60GB/h", "0GB/s", "1e20GB/s", "fast"}) EXPECT_FALSE(ParseBytesPerSecond(bad, "--bandwidth").ok()) << bad;
  EXPECT_DOUBLE_EQ(*ParseSeconds("50us", "--net"), 50e-6);
  EXPECT_DOUBLE_EQ(*ParseSeconds("0.2ms", "--net"), 0.2e-3);
  EXPECT_FALSE(ParseSeconds("50", "--net").ok());
  EXPECT_FALSE(ParseSeconds("1h", "--net").ok());
  auto n = ParseNetwork("50us,10Gbit", "--net");
  ASSERT_TRUE(n.ok());
  EXPECT_DOUBLE_EQ(n->latency_s, 50e-6);
  EXPECT_DOUBLE_EQ(n->bytes_per_s, 1.25e9);
  EXPECT_FALSE(ParseNetwork("50us", "--net").ok());
  EXPECT_FALSE(ParseNetwork("50us,", "--net").ok());
}

TEST(AdviseCostModel, AllReduceIsTheFasterOfDoublingAndRing) {
  const Network net{10e-6, 1e9};
  EXPECT_EQ(AllReduceSeconds(8192, 1, net), 0);
  // 2 ranks: one exchange either way.
  EXPECT_NEAR(AllReduceSeconds(8192, 2, net), 10e-6 + 8192 / 1e9, 1e-12);
  // 4 ranks, a small message: recursive doubling (2 steps) beats the ring's 6 latencies.
  EXPECT_NEAR(AllReduceSeconds(8192, 4, net), 2 * (10e-6 + 8192 / 1e9), 1e-12);
  // A large message: the ring moves 2(n-1)/n of it instead of log2(n) copies.
  const double big = 64e6;
  EXPECT_NEAR(AllReduceSeconds(big, 4, net), 6 * 10e-6 + 1.5 * big / 1e9, 1e-9);
}

double ViewBytes(const WeightView& w) {
  return static_cast<double>(*RowBytes(w.type, static_cast<uint64_t>(w.cols)) * static_cast<uint64_t>(w.rows));
}

using testing::TestSpeed;

TEST(AdviseCostModel, DecodeIsBytesOverRatePlusAttentionPlusHandoffs) {
  ModelWork w;
  w.threaded_bytes[GgmlType::kQ4_K] = 4e9;
  w.single_bytes[GgmlType::kF32] = 1e6;  // norms
  w.weight_macs[GgmlType::kQ4_K] = 7e9;
  w.threaded_products = 161;
  w.threads = 4;
  w.n_layer = 32;
  w.n_embd = 4096;
  w.q_heads = 32;
  w.kv_dim = 1024;
  w.head_dim = 128;
  const MachineSpeed m = TestSpeed();
  const double attention = std::max(w.AttentionOps(99) / 100e9, w.KvBytes(99) / 50e9);
  // At position 99, 32 heads x 100 positions x 128 hand attention out too: 32 more hand-offs.
  EXPECT_NEAR(*DecodeSeconds(w, m, 99), 4e9 / 40e9 + 1e6 / 20e9 + attention + (161 + 32) * 2e-6, 1e-12);
  // The step's fixed costs (measured by the probe): per token and per layer.
  MachineSpeed fixed = m;
  fixed.token_us = 100;
  fixed.layer_us = 10;
  EXPECT_NEAR(*DecodeSeconds(w, fixed, 99), *DecodeSeconds(w, m, 99) + 100e-6 + 32 * 10e-6, 1e-12);
  // The decode efficiency the probe measured divides the streamed weights' time, and nothing else.
  MachineSpeed slower = m;
  slower.decode_efficiency = 0.8;
  EXPECT_NEAR(*DecodeSeconds(w, slower, 99), *DecodeSeconds(w, m, 99) + (4e9 / 40e9 + 1e6 / 20e9) * (1 / 0.8 - 1), 1e-12);
  EXPECT_NEAR(*PromptSeconds(w, slower, 512), *PromptSeconds(w, m, 512), 1e-15);
  // Once per prompt step of up to 512 tokens.
  EXPECT_NEAR(*PromptSeconds(w, fixed, 1024), *PromptSeconds(w, m, 1024) + 2 * (100e-6 + 32 * 10e-6), 1e-12);
  // The mean over positions 0..127 is the time at the middle.
  EXPECT_NEAR(*DecodeTokensPerSecond(w, m, 0, 128), 2 / (*DecodeSeconds(w, m, 0) + *DecodeSeconds(w, m, 127)), 1e-9);
  // A prompt: the multiply-adds at the GEMM rate.
  const double prompt = *PromptSeconds(w, m, 512);
  EXPECT_GT(prompt, 2 * 7e9 * 512 / 200e9);
  EXPECT_LT(prompt, 2 * 7e9 * 512 / 200e9 * 1.2);
  // A type the machine has no close relative of: an error that names it.
  MachineSpeed none;
  none.bandwidth_gbps = 10;
  auto e = DecodeSeconds(w, none, 0);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("Q4_K"), std::string::npos);
  // Tensor parallel: the largest rank's decode plus 2 all-reduces per layer and the token broadcast.
  const Network net{20e-6, 1.25e9};
  EXPECT_NEAR(*TensorParallelDecodeSeconds(w, m, 2, net, 0),
              *DecodeSeconds(w, m, 0) + 2 * 32 * AllReduceSeconds(4096 * 4, 2, net) + 20e-6, 1e-12);
}

TEST(AdviseCostModel, MachineSpeedJsonRoundTripsAndRejectsBrokenCaches) {
  MachineSpeed m = TestSpeed();
  m.token_us = 150;
  m.layer_us = 12.5;
  m.decode_efficiency = 0.85;
  MachineSpeed back;
  ASSERT_TRUE(MachineSpeed::FromJson(m.ToJson(), &back));
  EXPECT_EQ(back.ToJson(), m.ToJson());
  for (const char* bad : {"[]", "{}", "null", "{\"threads\": 1}"}) EXPECT_FALSE(MachineSpeed::FromJson(nlohmann::json::parse(bad), &back)) << bad;
  // One field wrong at a time.
  std::vector<std::function<void(nlohmann::json&)>> breaks = {
      [](nlohmann::json& j) { j["bandwidth_gbps"] = -3; },
      [](nlohmann::json& j) { j["threads"] = "x"; },
      [](nlohmann::json& j) { j["threads"] = 0; },
      [](nlohmann::json& j) { j["handoff_us"] = -1; },
      [](nlohmann::json& j) { j["token_us"] = -1; },
      [](nlohmann::json& j) { j["layer_us"] = 1e9; },
      [](nlohmann::json& j) { j["decode_efficiency"] = 0; },
      [](nlohmann::json& j) { j["decode_efficiency"] = "fast"; },
      [](nlohmann::json& j) { j["types"]["Q9_Z"] = j["types"]["F32"]; },
      [](nlohmann::json& j) { j["types"]["F32"]["gemm_gops"] = 0; },
      [](nlohmann::json& j) { j["types"]["F32"].erase("cached_gbps"); },
      [](nlohmann::json& j) { j["types"] = nlohmann::json::object(); },
      [](nlohmann::json& j) { j.erase("llc_bytes"); },
  };
  for (size_t i = 0; i < breaks.size(); ++i) {
    nlohmann::json j = m.ToJson();
    breaks[i](j);
    EXPECT_FALSE(MachineSpeed::FromJson(j, &back)) << i << ": " << j.dump();
  }
}

TEST(AdviseModelSource, ShapesPlanWithTheEngineLoader) {
  auto src = ModelSource::Open("llama3.2-1b");
  ASSERT_TRUE(src.ok()) << src.status().message();
  EXPECT_EQ(src->kind(), "shape");
  EXPECT_FALSE(src->has_as_is());
  auto p = src->As("Q4_K_M");
  ASSERT_TRUE(p.ok()) << p.status().message();
  const LlamaConfig& c = p->model.config();
  EXPECT_EQ(c.n_layer, 16);
  EXPECT_EQ(c.n_vocab, 128256);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(p->model.output.data, p->model.token_embd.data);  // tied: no output.weight
  EXPECT_EQ(p->UnreadBytes(), 0u);
  SynthOptions so;
  so.shape = "llama3.2-1b";
  so.type = "Q4_K_M";
  EXPECT_EQ(p->file_bytes, SynthWriter(so)->FileSize());
  auto bad = ModelSource::Open("llama9-1t");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("tinyllama-1.1b"), std::string::npos) << bad.status().message();
}

TEST(AdviseModelSource, CandidateFilesHaveTheSizeQuantizeWrites) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  for (const std::string& input : {testing::SharedPath("models/stories5M/stories5M-f32.gguf"),
                                  testing::SharedPath("models/stories260K/hf-bf16")}) {
    auto src = ModelSource::Open(input);
    ASSERT_TRUE(src.ok()) << src.status().message();
    auto as_is = src->AsIs();
    ASSERT_TRUE(as_is.ok()) << as_is.status().message();
    for (const char* type : {"Q8_0", "Q4_K_M", "Q2_K"}) {
      SCOPED_TRACE(input + " " + type);
      auto p = src->As(type);
      ASSERT_TRUE(p.ok()) << p.status().message();
      QuantizeOptions q;
      q.input = input;
      q.output = dir.Path("q.gguf");
      q.type = type;
      q.threads = 2;
      auto rep = QuantizeModel(q);
      ASSERT_TRUE(rep.ok()) << rep.status().message();
      EXPECT_EQ(p->file_bytes, std::filesystem::file_size(q.output));
      // The written file loads to the same shapes.
      auto g = GgufFile::Open(q.output);
      ASSERT_TRUE(g.ok());
      auto m = LlamaModel::Load(*g);
      ASSERT_TRUE(m.ok()) << m.status().message();
      for (size_t l = 0; l < m->layers.size(); ++l) {
        EXPECT_EQ(m->layers[l].down.type, p->model.layers[l].down.type);
        EXPECT_EQ(m->layers[l].wv.type, p->model.layers[l].wv.type);
      }
    }
  }
}

Hardware TestHardware(uint64_t ram) {
  Hardware hw;
  hw.described = true;
  hw.cpu = "test";
  hw.ram_total = hw.ram_available = ram;
  hw.threads = 4;
  hw.isa = Isa::kAvx2;
  hw.speed = TestSpeed();
  return hw;
}

TEST(Advisor, JsonHasTheIssuesKeysAndTheRuleRecommends) {
  auto src = ModelSource::Open("llama3-8b");
  ASSERT_TRUE(src.ok());
  AdviseOptions o;
  o.ctx = 4096;
  auto a = Advise(*src, TestHardware(uint64_t{64} << 30), o);
  ASSERT_TRUE(a.ok()) << a.status().message();
  const nlohmann::json j = a->ToJson();
  for (const char* key : {"hardware", "as_is", "candidates", "recommendation"}) EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_TRUE(j["as_is"].is_null());  // a shape has no file
  ASSERT_EQ(j["candidates"].size(), DefaultCandidateTypes().size());
  for (const auto& c : j["candidates"]) {
    for (const char* key : {"type", "file_bytes", "kld", "memory_bytes", "decode_tok_s", "prompt_tok_s", "fits"}) {
      EXPECT_TRUE(c.contains(key)) << key;
    }
    EXPECT_TRUE(c["fits"].get<bool>());
  }
  // With 64 GiB every type fits: F16 -> Q8_0 (much faster, KLD +0.0001) -> Q6_K (1.3x, +0.0005) and
  // no further (Q5_K_M is less than 1.25x faster).
  EXPECT_EQ(j["recommendation"]["type"], "Q6_K");
  // With 6 GiB only the small types fit with 10% free: Q4_K_M needs ~5.2 GiB at context 4096 F32 ...
  o.kv_f16 = true;
  o.ctx = 2048;
  a = Advise(*src, TestHardware(uint64_t{6} << 30), o);
  ASSERT_TRUE(a.ok());
  const nlohmann::json k = a->ToJson();
  EXPECT_FALSE(k["candidates"][0]["fits"].get<bool>());  // F16: 16 GB
  const std::string pick = k["recommendation"]["type"];
  EXPECT_TRUE(pick == "Q4_K_M" || pick == "IQ4_XS" || pick == "Q3_K_M") << pick;
  // ... and with 2 GiB nothing does, and the text says what the smallest needs.
  a = Advise(*src, TestHardware(uint64_t{2} << 30), o);
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->ToJson()["recommendation"]["type"].is_null());
  EXPECT_NE(a->recommendation.find("Q2_K"), std::string::npos) << a->recommendation;
}

TEST(Advisor, MemoryAddsUpAndScalesWithContextAndSlots) {
  auto src = ModelSource::Open("tinyllama-1.1b");
  ASSERT_TRUE(src.ok());
  auto p = src->As("Q4_K_M");
  ASSERT_TRUE(p.ok());
  RunShape r;
  r.n_ctx = 2048;
  r.threads = 2;
  const RunMemory m1 = PredictRunMemory(*p, r);
  // 22 layers x K and V x 2048 positions x 4 KV heads of 64 floats.
  EXPECT_EQ(m1.kv_cache, uint64_t{22} * 2 * 2048 * 256 * 4);
  r.kv_f16 = true;
  EXPECT_EQ(PredictRunMemory(*p, r).kv_cache, m1.kv_cache / 2);
  r.slots = 3;
  EXPECT_EQ(PredictRunMemory(*p, r).kv_cache, 3 * m1.kv_cache / 2);
  r = RunShape{};
  r.n_ctx = 2048;
  r.in_memory = false;
  const RunMemory mapped = PredictRunMemory(*p, r);
  EXPECT_EQ(mapped.weights, (p->file_bytes - p->UnreadBytes() + 4095) / 4096 * 4096);
  // Held in memory: the model's image in 2 MiB pages and the file's header through the mapping. Q4_K
  // rows are never a multiple of 4 KiB, so the image is the tensors' bytes.
  uint64_t tensors = 0;
  for (const GgufTensorInfo& t : p->file->tensors()) tensors += t.n_bytes;
  EXPECT_EQ(HeldWeightBytes(p->model), tensors);
  EXPECT_EQ(m1.weights, (tensors + (2u << 20) - 1) / (2u << 20) * (2u << 20) + (p->file->data_offset() + 4095) / 4096 * 4096);
  // F16: every row of 2048 columns (4096 bytes) one line apart more: per layer Q, O (2048 rows), K, V
  // (256), gate, up (5632); the embedding and the classifier (32000 each). ffn_down's rows are 11264 bytes.
  auto f16 = src->As("F16");
  ASSERT_TRUE(f16.ok());
  uint64_t f16_tensors = 0;
  for (const GgufTensorInfo& t : f16->file->tensors()) f16_tensors += t.n_bytes;
  EXPECT_EQ(HeldWeightBytes(f16->model), f16_tensors + (uint64_t{22} * (2 * 2048 + 2 * 256 + 2 * 5632) + 2 * 32000) * 64);
}

// GPTQ w4 g128 and bitsandbytes NF4 folders as candidates: the decoder's linears in the rows the
// loader builds (W4G128, NF4G64), the rest 16-bit; the folder's bytes on disk; KLD with its source.
TEST(AdviseModelSource, FolderCandidatesRunTheirOwnRows) {
  auto src = ModelSource::Open("tinyllama-1.1b");
  ASSERT_TRUE(src.ok());
  auto f16 = src->As("F16");
  ASSERT_TRUE(f16.ok());
  uint64_t linear_f16 = 0, linear_weights = 0;
  for (const LlamaModel::Layer& L : f16->model.layers) {
    for (const WeightView* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.gate, &L.up, &L.down}) {
      linear_f16 += static_cast<uint64_t>(ViewBytes(*w));
      linear_weights += static_cast<uint64_t>(w->rows * w->cols);
    }
  }
  for (const std::string type : {"GPTQ-W4G128", "NF4"}) {
    SCOPED_TRACE(type);
    ASSERT_TRUE(IsFolderCandidate(type));
    auto p = src->As(type);
    ASSERT_TRUE(p.ok()) << p.status().message();
    const GgmlType rows = type == "NF4" ? GgmlType::kNF4G64x2 : GgmlType::kW4G128;
    EXPECT_EQ(p->type, type);
    EXPECT_EQ(p->model.layers[3].wq.type, rows);
    EXPECT_EQ(p->model.layers[21].down.type, rows);
    EXPECT_EQ(p->model.output.type, GgmlType::kF16);
    EXPECT_EQ(p->model.token_embd.type, GgmlType::kF16);
    // In memory: 4.25 (W4G128) or 4.5 (NF4G64x2) bits per linear weight.
    const double bits = type == "NF4" ? 4.5 : 4.25;
    EXPECT_EQ(p->file_bytes, f16->file_bytes - linear_f16 + static_cast<uint64_t>(static_cast<double>(linear_weights) * bits / 8));
    // On disk: a little over 4 bits per linear weight (GPTQ: + fp16 scale and 4-bit zero per 128 and
    // an int32 g_idx per input column; NF4 + DQ: + an 8-bit absmax per 64 and the nested absmax).
    const double disk_bits = static_cast<double>(p->folder_bytes - (f16->file_bytes - linear_f16)) * 8 / static_cast<double>(linear_weights);
    EXPECT_GT(disk_bits, 4.12);
    EXPECT_LT(disk_bits, type == "NF4" ? 4.14 : 4.2);
    const Quality q = FindQuality(type);
    ASSERT_NE(q.stories5m, nullptr);
    EXPECT_NE(std::string(q.source).find("docs/QUALITY.md"), std::string::npos);
  }
  EXPECT_NEAR(FindQuality("GPTQ-W4G128").stories5m->kld, 0.007118, 1e-9);
  EXPECT_NEAR(FindQuality("NF4").stories5m->kld, 0.009153, 1e-9);
  EXPECT_EQ(std::string(FindQuality("Q4_K_M").source), "scripts/measure_quality.sh");
  // The advisor weighs them by default, and reports the folder's size as the file.
  AdviseOptions o;
  o.ctx = 2048;
  o.types = {"Q4_K_M", "GPTQ-W4G128", "NF4"};
  ASSERT_TRUE(CheckAdviseInputs(&*src, o).ok());
  auto a = Advise(*src, TestHardware(uint64_t{16} << 30), o);
  ASSERT_TRUE(a.ok()) << a.status().message();
  const nlohmann::json j = a->ToJson();
  EXPECT_EQ(j["candidates"][1]["file_bytes"].get<uint64_t>(), src->As("GPTQ-W4G128")->folder_bytes);
  EXPECT_NE(j["candidates"][2]["kld_source"].get<std::string>().find("issue 20"), std::string::npos);
  // A width the group does not divide (stories15m: 288): the candidate says why.
  auto narrow = ModelSource::Open("stories15m");
  ASSERT_TRUE(narrow.ok());
  auto bad = narrow->As("GPTQ-W4G128");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("multiple of 128"), std::string::npos) << bad.status().message();
  auto row = Advise(*narrow, TestHardware(uint64_t{16} << 30), o);  // the other candidates are still weighed
  ASSERT_TRUE(row.ok()) << row.status().message();
  EXPECT_TRUE(row->candidates[0].error.empty());
  EXPECT_NE(row->candidates[1].error.find("multiple of 128"), std::string::npos);
  EXPECT_FALSE(row->candidates[1].fits);
}

// A mixture of experts (qwen3-30b-a3b: 128 experts, 8 per token): memory holds every expert, a
// decoded token reads the router and the 8 experts it uses, the attention and the classifier.
TEST(Advisor, MixtureOfExpertsHoldsEveryExpertAndReadsTheActiveOnes) {
  auto src = ModelSource::Open("qwen3-30b-a3b");
  ASSERT_TRUE(src.ok()) << src.status().message();
  auto p = src->As("Q4_K_M");
  ASSERT_TRUE(p.ok()) << p.status().message();
  const LlamaConfig& c = p->model.config();
  ASSERT_EQ(c.n_expert, 128);
  ASSERT_EQ(c.n_expert_used, 8);
  // What a token reads, counted here from the model's views.
  double active = ViewBytes(p->model.output_norm) + ViewBytes(p->model.output) +
                  static_cast<double>(*RowBytes(p->model.token_embd.type, static_cast<uint64_t>(p->model.token_embd.cols)));
  double all_experts = 0;
  for (const LlamaModel::Layer& L : p->model.layers) {
    ASSERT_EQ(L.gate_exps.size(), 128u);
    active += ViewBytes(L.attn_norm) + ViewBytes(L.ffn_norm) + ViewBytes(L.wq) + ViewBytes(L.wk) + ViewBytes(L.wv) + ViewBytes(L.wo) +
              ViewBytes(L.router);
    active += 8 * (ViewBytes(L.gate_exps[0]) + ViewBytes(L.up_exps[0]) + ViewBytes(L.down_exps[0]));
    for (size_t e = 0; e < L.gate_exps.size(); ++e) {
      all_experts += ViewBytes(L.gate_exps[e]) + ViewBytes(L.up_exps[e]) + ViewBytes(L.down_exps[e]);
    }
  }
  const ModelWork w = WorkOf(p->model, false, 4);
  EXPECT_NEAR(w.WeightBytes(), active, 1);
  EXPECT_LT(w.WeightBytes(), 0.15 * static_cast<double>(p->file_bytes));  // ~3B of 30B parameters
  EXPECT_GT(all_experts, 0.9 * static_cast<double>(p->file_bytes));
  // Memory: the whole file (every expert), read into 2 MiB pages.
  AdviseOptions o;
  o.ctx = 4096;
  o.types = {"Q4_K_M"};
  auto a = Advise(*src, TestHardware(uint64_t{64} << 30), o);
  ASSERT_TRUE(a.ok()) << a.status().message();
  const Estimate& e = a->candidates.at(0);
  EXPECT_GE(e.memory.weights, p->file_bytes);
  EXPECT_LT(e.memory.weights, p->file_bytes + (2u << 20));
  // Decode at the test machine's 40 GB/s stream rate for Q4_K: the active bytes, not the file's.
  EXPECT_GT(e.decode_tok_s, 0.8 * 40e9 / active);
  EXPECT_LT(e.decode_tok_s, 40e9 / active);
  // Tensor parallel over 2 nodes: each rank holds its share of every expert.
  Hardware two = TestHardware(uint64_t{64} << 30);
  two.nodes = 2;
  two.net = Network{20e-6, 1.25e9};
  auto t = Advise(*src, two, o);
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_GT(static_cast<double>(t->candidates.at(0).memory.weights), 0.45 * static_cast<double>(p->file_bytes));
}

// A GGUF with a small file and an enormous cache at long contexts: 64 layers of width 128.
std::string WriteWideCacheModel(const testing::TempDir& dir) {
  return testing::WriteZeroLlama(dir.Path("wide-cache.gguf"), 128, 2, 64, 1u << 20);
}

TEST(AdviseGuard, RefusesWhatDoesNotFitAndSaysWhatWould) {
  testing::TempDir dir;
  const std::string path = WriteWideCacheModel(dir);
  FitRequest small{.model = path, .n_ctx = 4096, .threads = 1};
  auto ok = CheckFit(small);
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_TRUE(ok->fits);
  EXPECT_TRUE(RequireFit(small).ok());
  // At the trained context (1M) the F32 cache alone is 64 GiB.
  FitRequest big{.model = path, .threads = 1};
  auto c = CheckFit(big);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->memory.kv_cache, uint64_t{64} * 2 * (1u << 20) * 128 * 4);
  if (c->available >= c->memory.total()) GTEST_SKIP() << "this machine has more than 64 GiB available";
  EXPECT_FALSE(c->fits);
  const Status s = RequireFit(big);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(path), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("it would fit with -c "), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("--no-memory-check"), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find('\n'), std::string::npos);
}

TEST(AdviseGuard, MemoryInfoIsSane) {
  const MemoryInfo m = ReadMemoryInfo();
  EXPECT_GT(m.total, 0u);
  EXPECT_LE(m.available, m.total);
  EXPECT_GT(PeakResidentBytes(), 0u);
}

}  // namespace
}  // namespace lowbit

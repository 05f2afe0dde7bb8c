// Replays the checked-in corpus of broken files (tests/corpus/<parser>/*: every crash a fuzzer or a
// person ever found, plus hand-made hostile inputs) through the parsers: each must return cleanly,
// and files named *.bad must be rejected with an error.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "lowbit/formats/ggml_legacy.h"
#include "lowbit/formats/gguf_reader.h"
#include "lowbit/formats/hf.h"
#include "lowbit/formats/imatrix.h"
#include "lowbit/formats/llama2c.h"
#include "lowbit/formats/quant_checkpoint.h"
#include "lowbit/formats/bnb_checkpoint.h"
#include "lowbit/formats/quant_config.h"
#include "lowbit/formats/safetensors.h"
#include "lowbit/formats/sentencepiece_model.h"
#include "lowbit/model/llama.h"
#include "lowbit/pipeline/convert.h"
#include "lowbit/server/openai.h"
#include "lowbit/template/template.h"
#include "lowbit/train/checkpoint.h"
#include "lowbit/train/lora_file.h"
#include "test_data.h"

namespace lowbit {
namespace {
namespace fs = std::filesystem;

// 8 bytes of file size, then a GGUF header (what --tp-send-weights sends); then the shard plans of
// 1 to 3 ranks, which on a header alone end in an error once planned (no data to view).
Status ParseHeaderAndPlan(const std::vector<uint8_t>& b) {
  if (b.size() < 8) return Errorf("corpus: shorter than the 8-byte file size");
  uint64_t file_size = 0;
  std::memcpy(&file_size, b.data(), 8);
  LOWBIT_ASSIGN_OR_RETURN(GgufFile h, GgufFile::ParseHeader(std::span<const uint8_t>(b).subspan(8), file_size, "corpus"));
  for (int ranks = 1; ranks <= 3; ++ranks) {
    for (int r = 0; r < ranks; ++r) {
      auto m = LlamaModel::Load(h, r, ranks);
      if (!m.ok() && m.status().message().find("has no data in this process") == std::string::npos) return m.status();
    }
  }
  return OkStatus();
}

// A safetensors file of bitsandbytes linears, read as fuzz_bnb_tensors reads them: 4-bit ones with the
// 2-D shape their quant state claims, 8-bit ones with their weight's shape; at least one must exist.
Status ReadBnbTensors(const std::vector<uint8_t>& b) {
  auto f = SafetensorsFile::Parse(b, "corpus");
  if (!f.ok()) return f.status();
  const TensorSet ts(*f);
  int linears = 0;
  for (const StTensor& t : f->tensors()) {
    const size_t qs = t.name.find(".weight.quant_state.bitsandbytes__");
    if (qs != std::string::npos) {
      auto st = ParseBnb4State(std::string_view(reinterpret_cast<const char*>(t.data.data()), t.data.size()), "corpus: " + t.name);
      if (!st.ok()) return st.status();
      if (st->shape.size() != 2) return Errorf("corpus: {}: not a 2-D weight", t.name);
      auto l = ReadBnb4Linear(ts, t.name.substr(0, qs), st->shape[0], st->shape[1]);
      if (!l.ok()) return Errorf("corpus: {}", l.status().message());
      ++linears;
    }
    if (t.name.ends_with(".SCB")) {
      const std::string prefix = t.name.substr(0, t.name.size() - 4);
      const StTensor* w = f->Find(prefix + ".weight");
      if (w == nullptr || w->shape.size() != 2) return Errorf("corpus: {}.weight: missing or not 2-D", prefix);
      auto l = ReadBnb8Linear(ts, prefix, static_cast<int64_t>(w->shape[0]), static_cast<int64_t>(w->shape[1]));
      if (!l.ok()) return Errorf("corpus: {}", l.status().message());
      ++linears;
    }
  }
  if (linears == 0) return Errorf("corpus: no bitsandbytes linear");
  return OkStatus();
}

// A safetensors file of GPTQ / AWQ layers, read under the config its __metadata__ carries as
// "quantization_config" (GPTQ v1 4-bit group 128 act-order when absent), as fuzz_quant_tensors does.
Status ReadQuantTensors(const std::vector<uint8_t>& b) {
  auto f = SafetensorsFile::Parse(b, "corpus");
  if (!f.ok()) return f.status();
  QuantConfig cfg;
  cfg.desc_act = true;
  cfg.sym = false;
  auto it = f->metadata().find("quantization_config");
  if (it != f->metadata().end()) {
    auto c = ParseQuantConfig(it->second, "corpus: quantization_config");
    if (!c.ok()) return c.status();
    cfg = *c;
  }
  int layers = 0;
  Status s = ForEachQuantizedLinear(*f, cfg, [&](const std::string&, IntQuantLinear&& q) {
    ++layers;
    return CheckIntQuantLinear(q, "corpus");
  });
  if (s.ok() && layers == 0) return Status::Error("corpus: no quantized layer in the file");
  return s.WithContext("corpus");
}

// A legacy GGML file, then its llama plan with every older block layout converted.
Status ReadLegacyGgml(const std::vector<uint8_t>& b) {
  auto f = GgmlLegacyFile::Parse(b, "corpus");
  if (!f.ok()) return f.status();
  return PlanLegacyGgml(std::make_shared<const GgmlLegacyFile>(std::move(f).value()), "", {}, true).status();
}

Status ParseAs(const std::string& parser, const std::vector<uint8_t>& b) {
  const std::string_view text(reinterpret_cast<const char*>(b.data()), b.size());
  if (parser == "gguf") return GgufFile::Parse(b, "corpus").status();
  if (parser == "gguf_header") return ParseHeaderAndPlan(b);
  if (parser == "safetensors") return SafetensorsFile::Parse(b, "corpus").status();
  if (parser == "llama2c") return Llama2cCheckpoint::Parse(b, "corpus").status();
  if (parser == "llama2c_tokenizer") return ParseLlama2cTokenizer(b, 512, "corpus").status();
  if (parser == "hf_config") return ParseHfConfig(text, "corpus").status();
  if (parser == "tokenizer_json") return ParseHfTokenizerJson(text, "corpus").status();
  if (parser == "sentencepiece") return ParseSentencePieceModel(b, "corpus").status();
  if (parser == "imatrix") return ParseImatrixDat(b, "corpus").status();
  if (parser == "jinja") {  // parse, then render (a template may fail only when run)
    auto t = jinja::Template::Parse(text);
    Status s = t.ok() ? t->Render(jinja::Value::FromJson({{"messages", {{{"role", "user"}, {"content", "x"}}}}})).status() : t.status();
    return s.ok() ? s : Errorf("corpus: {}", s.message());
  }
  if (parser == "openai_request") {  // as a chat request
    auto r = server::ParseRequest(std::string(text), true, 32000);
    return std::holds_alternative<server::ApiError>(r) ? Errorf("corpus: {}", std::get<server::ApiError>(r).message) : OkStatus();
  }
  if (parser == "quant_config") return ParseQuantConfig(text, "corpus").status();
  if (parser == "quant_tensors") return ReadQuantTensors(b);
  if (parser == "ggml_legacy") return ReadLegacyGgml(b);
  if (parser == "bnb_state") return ParseBnb4State(text, "corpus").status();
  if (parser == "bnb_tensors") return ReadBnbTensors(b);
  if (parser == "peft_config") return train::ParsePeftConfig(text, "corpus").status();
  if (parser == "lora_gguf" || parser == "train_checkpoint") {
    auto g = GgufFile::Parse(b, "corpus");
    if (!g.ok() || parser == "lora_gguf") return g.ok() ? train::LoraFromGguf(*g).status() : g.status();
    train::Param w("w", 2, 4, true), n("n", 1, 4, false);
    return train::LoadCheckpoint(*g, {&w, &n}, {.kind = "qat", .config = "{}"}).status();
  }
  ADD_FAILURE() << "no parser named " << parser;
  return OkStatus();
}

TEST(Corpus, BrokenFilesAreRejectedCleanly) {
  int files = 0;
  for (const auto& dir : fs::directory_iterator(testing::CorpusDir())) {
    if (!dir.is_directory()) continue;
    const std::string parser = dir.path().filename().string();
    for (const auto& f : fs::directory_iterator(dir.path())) {
      SCOPED_TRACE(f.path().string());
      Status s = ParseAs(parser, testing::ReadFileBytes(f.path().string()));
      if (f.path().extension() == ".bad") {
        EXPECT_FALSE(s.ok()) << "accepted a file marked bad";
        if (!s.ok()) {
          EXPECT_NE(s.message().find("corpus"), std::string::npos) << s.message();
        }
      }
      ++files;
    }
  }
  EXPECT_GT(files, 20);
}

TEST(Corpus, ValidQuantizedCheckpointFilesAreAccepted) {
  int files = 0;
  for (const char* parser : {"quant_config", "quant_tensors", "ggml_legacy", "bnb_state", "bnb_tensors"}) {
    for (const auto& f : fs::directory_iterator(fs::path(testing::CorpusDir()) / parser)) {
      if (f.path().extension() != ".ok") continue;
      SCOPED_TRACE(f.path().string());
      Status s = ParseAs(parser, testing::ReadFileBytes(f.path().string()));
      EXPECT_TRUE(s.ok()) << s.message();
      ++files;
    }
  }
  EXPECT_GE(files, 13);
}

}  // namespace
}  // namespace lowbit

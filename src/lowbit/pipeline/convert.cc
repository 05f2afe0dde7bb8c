#include "lowbit/pipeline/convert.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <nlohmann/json.hpp>
#include <set>

#include "lowbit/base/mapped_file.h"
#include "lowbit/formats/bnb_checkpoint.h"
#include "lowbit/formats/gguf_reader.h"
#include "lowbit/formats/gguf_writer.h"
#include "lowbit/formats/hf.h"
#include "lowbit/formats/llama2c.h"
#include "lowbit/formats/quant_config.h"
#include "lowbit/formats/safetensors.h"
#include "lowbit/formats/sentencepiece_model.h"
#include "lowbit/numeric/convert.h"
#include "lowbit/numeric/dequant.h"
#include "lowbit/pipeline/bnb_linear.h"
#include "lowbit/pipeline/llama_metadata.h"
#include "lowbit/pipeline/quant_linear.h"
#include "lowbit/pipeline/row_convert.h"
#include "lowbit/quant/quantize.h"

namespace lowbit {
namespace fs = std::filesystem;
namespace {

bool HasGgufMagic(const std::string& path) {
  auto map = MappedFile::Open(path);
  return map.ok() && map->size() >= 4 && std::memcmp(map->data(), "GGUF", 4) == 0;
}

bool LooksLikeSafetensors(const std::string& path) {
  if (path.ends_with(".safetensors")) return true;
  auto map = MappedFile::Open(path);
  if (!map.ok() || map->size() < 9) return false;
  uint64_t n = 0;
  std::memcpy(&n, map->data(), 8);
  return n <= map->size() - 8 && map->data()[8] == '{';
}

void AddTensor(ConversionPlan& plan, std::string name, std::vector<uint64_t> dims, GgmlType type,
               std::span<const uint8_t> data, uint32_t unpermute_heads = 0) {
  plan.tensors.push_back({std::move(name), std::move(dims), type, data, unpermute_heads});
}

Expected<ConversionPlan> PlanLlama2c(const std::string& input, const std::string& vocab_path) {
  LOWBIT_ASSIGN_OR_RETURN(Llama2cCheckpoint ck, Llama2cCheckpoint::Open(input));
  auto ckp = std::make_shared<Llama2cCheckpoint>(std::move(ck));
  const Llama2cConfig& c = ckp->config();
  std::string vocab = vocab_path;
  if (vocab.empty()) {
    fs::path beside = fs::path(input).parent_path() / "tokenizer.bin";
    if (!fs::exists(beside)) {
      return Errorf("{}: a llama2.c checkpoint carries no vocabulary; pass its tokenizer with "
                    "--vocab tokenizer.bin", input);
    }
    vocab = beside.string();
  }
  ConversionPlan plan;
  plan.input_kind = "llama2.c";
  plan.keep_alive.push_back(ckp);
  plan.mappings.push_back(&ckp->file());
  LlamaHparams hp;
  hp.context_length = c.seq_len;
  hp.embedding_length = c.dim;
  hp.feed_forward_length = c.hidden_dim;
  hp.block_count = c.n_layers;
  hp.head_count = c.n_heads;
  hp.head_count_kv = c.n_kv_heads;
  hp.rope_dimension_count = c.head_dim();
  hp.vocab_size = c.vocab_size;
  plan.kvs = LlamaModelKvs(hp);
  LOWBIT_ASSIGN_OR_RETURN(auto tok, TokenizerKvs(vocab, c.vocab_size));
  plan.kvs.insert(plan.kvs.end(), tok.begin(), tok.end());

  const uint64_t dim = c.dim, hid = c.hidden_dim, V = c.vocab_size, kv = c.kv_dim();
  using W = Llama2cWeight;
  const auto F = GgmlType::kF32;
  AddTensor(plan, "token_embd.weight", {dim, V}, F, ckp->Weight(W::kTokenEmbedding));
  AddTensor(plan, "output_norm.weight", {dim}, F, ckp->Weight(W::kRmsFinal));
  AddTensor(plan, "output.weight", {dim, V}, F, ckp->Weight(W::kClassifier));
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    AddTensor(plan, p + "attn_q.weight", {dim, dim}, F, ckp->Weight(W::kWq, l));
    AddTensor(plan, p + "attn_k.weight", {dim, kv}, F, ckp->Weight(W::kWk, l));
    AddTensor(plan, p + "attn_v.weight", {dim, kv}, F, ckp->Weight(W::kWv, l));
    AddTensor(plan, p + "attn_output.weight", {dim, dim}, F, ckp->Weight(W::kWo, l));
    AddTensor(plan, p + "attn_norm.weight", {dim}, F, ckp->Weight(W::kRmsAtt, l));
    AddTensor(plan, p + "ffn_gate.weight", {dim, hid}, F, ckp->Weight(W::kW1, l));
    AddTensor(plan, p + "ffn_down.weight", {hid, dim}, F, ckp->Weight(W::kW2, l));
    AddTensor(plan, p + "ffn_up.weight", {dim, hid}, F, ckp->Weight(W::kW3, l));
    AddTensor(plan, p + "ffn_norm.weight", {dim}, F, ckp->Weight(W::kRmsFfn, l));
  }
  return plan;
}

Expected<GgmlType> GgmlTypeOfSafetensor(const StTensor& t, const std::string& where) {
  switch (t.dtype) {
    case StDtype::kF32: return GgmlType::kF32;
    case StDtype::kF16: return GgmlType::kF16;
    case StDtype::kBF16: return GgmlType::kBF16;
    default:
      return Errorf("{}: tensor '{}' has dtype {}; only F32, F16 and BF16 weights can be converted",
                    where, t.name, StDtypeName(t.dtype));
  }
}

// GGUF dims of a row-major safetensors shape: reversed.
std::vector<uint64_t> ReversedShape(const std::vector<uint64_t>& shape) {
  return std::vector<uint64_t>(shape.rbegin(), shape.rend());
}

// Whether a folder declares a quantization (config.json "quantization_config", quantize_config.json
// or quant_config.json): then LoadQuantConfig must succeed, and its errors are the folder's.
bool DeclaresQuantization(const fs::path& dir) {
  if (fs::exists(dir / "quantize_config.json") || fs::exists(dir / "quant_config.json")) return true;
  std::ifstream in(dir / "config.json");
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  return j.is_object() && j.contains("quantization_config") && !j["quantization_config"].is_null();
}

Expected<ConversionPlan> PlanHuggingFace(const fs::path& dir, const std::string& weights,
                                         const std::string& vocab_path) {
  LOWBIT_ASSIGN_OR_RETURN(HfLlamaConfig c, LoadHfConfig((dir / "config.json").string()));
  LOWBIT_ASSIGN_OR_RETURN(SafetensorsModel st, SafetensorsModel::Open(weights));
  auto stp = std::make_shared<SafetensorsModel>(std::move(st));
  ConversionPlan plan;
  plan.input_kind = "huggingface";
  plan.keep_alive.push_back(stp);
  plan.mappings = stp->mappings();
  LlamaHparams hp;
  hp.name = fs::absolute(dir).lexically_normal().filename().string();
  if (hp.name.empty()) hp.name = fs::absolute(dir).lexically_normal().parent_path().filename().string();
  hp.context_length = static_cast<uint32_t>(c.max_position_embeddings);
  hp.embedding_length = static_cast<uint32_t>(c.hidden_size);
  hp.feed_forward_length = static_cast<uint32_t>(c.intermediate_size);
  hp.block_count = static_cast<uint32_t>(c.num_hidden_layers);
  hp.head_count = static_cast<uint32_t>(c.num_attention_heads);
  hp.head_count_kv = static_cast<uint32_t>(c.num_key_value_heads);
  hp.rope_dimension_count = static_cast<uint32_t>(c.head_dim);
  hp.rope_freq_base = static_cast<float>(c.rope_theta);
  hp.rms_epsilon = static_cast<float>(c.rms_norm_eps);
  hp.vocab_size = static_cast<uint32_t>(c.vocab_size);
  plan.kvs = LlamaModelKvs(hp);
  if (c.rope_scaling_type == "linear") {
    plan.kvs.push_back({"llama.rope.scaling.type", GgufValue::String("linear")});
    plan.kvs.push_back({"llama.rope.scaling.factor", GgufValue::F32(static_cast<float>(c.rope_factor))});
  } else if (c.rope_scaling_type == "llama3") {
    // As llama.cpp's converter: the smoothed frequencies become the rope_freqs.weight factors.
    auto f = std::make_shared<std::vector<float>>(Llama3RopeFactors(
        static_cast<float>(c.rope_theta), c.head_dim, static_cast<float>(c.rope_factor), static_cast<float>(c.rope_low_freq_factor),
        static_cast<float>(c.rope_high_freq_factor), static_cast<float>(c.rope_original_context)));
    plan.keep_alive.push_back(f);
    AddTensor(plan, "rope_freqs.weight", {f->size()}, GgmlType::kF32,
              std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(f->data()), f->size() * 4));
  }

  std::string vocab = vocab_path;
  for (const char* candidate : {"tokenizer.model", "tokenizer.json"}) {
    if (vocab.empty() && fs::exists(dir / candidate)) vocab = (dir / candidate).string();
  }
  if (!vocab.empty()) {
    LOWBIT_ASSIGN_OR_RETURN(auto tok, TokenizerKvs(vocab, c.vocab_size));
    // config.json's special ids fill in what the tokenizer file does not state.
    auto has = [&](const char* k) {
      for (const GgufKv& kv : tok) if (kv.key == k) return true;
      return false;
    };
    if (c.bos_token_id >= 0 && !has("tokenizer.ggml.bos_token_id"))
      tok.push_back({"tokenizer.ggml.bos_token_id", GgufValue::U32(static_cast<uint32_t>(c.bos_token_id))});
    if (c.eos_token_id >= 0 && !has("tokenizer.ggml.eos_token_id"))
      tok.push_back({"tokenizer.ggml.eos_token_id", GgufValue::U32(static_cast<uint32_t>(c.eos_token_id))});
    plan.kvs.insert(plan.kvs.end(), tok.begin(), tok.end());
  }

  std::shared_ptr<const QuantConfig> qcfg;
  std::optional<BnbConfig> bnb;  // a bitsandbytes folder (transformers' load_in_4bit / load_in_8bit)
  LOWBIT_ASSIGN_OR_RETURN(const std::string cfg_text, ReadTextFile((dir / "config.json").string()));
  if (DeclaresBnbQuantization(cfg_text)) {
    LOWBIT_ASSIGN_OR_RETURN(bnb, ParseBnbConfig(cfg_text, (dir / "config.json").string()));
    plan.input_kind = "huggingface-quantized";
  } else if (DeclaresQuantization(dir)) {
    LOWBIT_ASSIGN_OR_RETURN(QuantConfig qc, LoadQuantConfig(dir.string()));
    qcfg = std::make_shared<const QuantConfig>(std::move(qc));
    plan.input_kind = "huggingface-quantized";
  }
  std::set<std::string> quant_names;  // the tensors of the quantized linears
  const std::string where = (dir / "config.json").string();
  const uint64_t dim = c.hidden_size, hid = c.intermediate_size, V = c.vocab_size;
  const uint64_t q_rows = c.num_attention_heads * c.head_dim, kv_rows = c.num_key_value_heads * c.head_dim;
  std::vector<bool> used;
  auto take = [&](const std::string& hf_name, const std::string& gguf_name,
                  std::vector<uint64_t> expect_shape, uint32_t unpermute_heads) -> Status {
    const StTensor* t = stp->Find(hf_name);
    if (t == nullptr) return Errorf("{}: the weights have no tensor '{}'", weights, hf_name);
    if (t->shape != expect_shape) {
      return Errorf("{}: tensor '{}' has shape [{}], config.json implies [{}]", weights, hf_name,
                    fmt::join(t->shape, ", "), fmt::join(expect_shape, ", "));
    }
    LOWBIT_ASSIGN_OR_RETURN(GgmlType type, GgmlTypeOfSafetensor(*t, weights));
    AddTensor(plan, gguf_name, ReversedShape(t->shape), type, t->data, unpermute_heads);
    plan.tensors.back().source_name = hf_name;
    return OkStatus();
  };
  // A linear layer: float, or GPTQ / AWQ quantized as the folder's config says.
  auto take_linear = [&](const std::string& module, const std::string& gguf_name, std::vector<uint64_t> expect_shape,
                         uint32_t unpermute_heads) -> Status {
    const bool bnb4 = HasBnb4Linear(*stp, module), bnb8 = HasBnb8Linear(*stp, module);
    if (bnb4 || bnb8) {
      if (!bnb.has_value()) {
        return Errorf("{}: '{}' is a bitsandbytes {}-bit linear but config.json has no bitsandbytes quantization_config",
                      weights, module, bnb4 ? 4 : 8);
      }
      if (bnb4 != bnb->load_in_4bit) {
        return Errorf("{}: '{}' is a bitsandbytes {}-bit linear but config.json says load_in_{}bit", weights, module,
                      bnb4 ? 4 : 8, bnb->load_in_4bit ? 4 : 8);
      }
      auto src = std::make_shared<BnbSource>();
      src->tensors = stp;
      src->prefix = module;
      src->rows = static_cast<int64_t>(expect_shape[0]);
      src->cols = static_cast<int64_t>(expect_shape[1]);
      src->unpermute_heads = unpermute_heads;
      src->eight_bit = bnb8;
      src->int8_threshold = bnb->int8_threshold;
      for (const char* suffix : {".weight", ".weight.absmax", ".weight.quant_map", ".weight.nested_absmax",
                                 ".weight.nested_quant_map", ".SCB", ".weight_format"})
        quant_names.insert(module + suffix);
      quant_names.insert(Bnb4StateTensorName(module, Bnb4Type::kNf4));
      quant_names.insert(Bnb4StateTensorName(module, Bnb4Type::kFp4));
      PlannedTensor t{gguf_name, ReversedShape(expect_shape), GgmlType::kF32, {}, 0};
      t.source_name = module + ".weight";
      t.bnb = std::move(src);
      plan.tensors.push_back(std::move(t));
      return OkStatus();
    }
    const bool packed = stp->Find(module + ".qweight") != nullptr;
    std::optional<ModuleQuant> mq;
    if (qcfg != nullptr) {
      LOWBIT_ASSIGN_OR_RETURN(mq, qcfg->ForModule(module));
    }
    if (!mq.has_value()) {
      if (packed) {
        return Errorf("{}: tensor '{}.qweight' is quantized but {}", weights, module,
                      qcfg == nullptr ? "the folder has no quantization config (config.json quantization_config or "
                                        "quantize_config.json)"
                                      : "the quantization config leaves this module unquantized");
      }
      return take(module + ".weight", gguf_name, std::move(expect_shape), unpermute_heads);
    }
    if (!packed) {
      return Errorf("{}: the quantization config quantizes '{}' ({}-bit, group size {}) but there is no tensor '{}.qweight'",
                    weights, module, mq->bits, mq->group_size, module);
    }
    auto src = std::make_shared<QuantizedSource>();
    src->tensors = stp;
    src->config = qcfg;
    src->prefix = module;
    src->rows = static_cast<int64_t>(expect_shape[0]);
    src->cols = static_cast<int64_t>(expect_shape[1]);
    src->unpermute_heads = unpermute_heads;
    src->where = weights;
    for (const char* suffix : {".qweight", ".qzeros", ".scales", ".g_idx", ".bias"}) quant_names.insert(module + suffix);
    PlannedTensor t{gguf_name, ReversedShape(expect_shape), GgmlType::kF32, {}, 0};
    t.source_name = module + ".weight";
    t.quant = std::move(src);
    plan.tensors.push_back(std::move(t));
    return OkStatus();
  };
  LOWBIT_RETURN_IF_ERROR(take("model.embed_tokens.weight", "token_embd.weight", {V, dim}, 0));
  LOWBIT_RETURN_IF_ERROR(take("model.norm.weight", "output_norm.weight", {dim}, 0));
  if (stp->Find("lm_head.weight") != nullptr || stp->Find("lm_head.qweight") != nullptr || stp->Find("lm_head.SCB") != nullptr) {
    LOWBIT_RETURN_IF_ERROR(take_linear("lm_head", "output.weight", {V, dim}, 0));
  } else if (c.tie_word_embeddings) {
    // Tied classifier: written as its own tensor, as llama.cpp's llama2.c converter does, so every
    // GGUF lowbit writes has `output.weight`.
    LOWBIT_RETURN_IF_ERROR(take("model.embed_tokens.weight", "output.weight", {V, dim}, 0));
  } else {
    return Errorf("{}: no lm_head.weight and tie_word_embeddings is false", weights);
  }
  const auto hq = static_cast<uint32_t>(c.num_attention_heads), hkv = static_cast<uint32_t>(c.num_key_value_heads);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string h = "model.layers." + std::to_string(l) + ".";
    const std::string g = "blk." + std::to_string(l) + ".";
    LOWBIT_RETURN_IF_ERROR(take_linear(h + "self_attn.q_proj", g + "attn_q.weight", {q_rows, dim}, hq));
    LOWBIT_RETURN_IF_ERROR(take_linear(h + "self_attn.k_proj", g + "attn_k.weight", {kv_rows, dim}, hkv));
    LOWBIT_RETURN_IF_ERROR(take_linear(h + "self_attn.v_proj", g + "attn_v.weight", {kv_rows, dim}, 0));
    LOWBIT_RETURN_IF_ERROR(take_linear(h + "self_attn.o_proj", g + "attn_output.weight", {dim, q_rows}, 0));
    LOWBIT_RETURN_IF_ERROR(take(h + "input_layernorm.weight", g + "attn_norm.weight", {dim}, 0));
    LOWBIT_RETURN_IF_ERROR(take_linear(h + "mlp.gate_proj", g + "ffn_gate.weight", {hid, dim}, 0));
    LOWBIT_RETURN_IF_ERROR(take_linear(h + "mlp.down_proj", g + "ffn_down.weight", {dim, hid}, 0));
    LOWBIT_RETURN_IF_ERROR(take_linear(h + "mlp.up_proj", g + "ffn_up.weight", {hid, dim}, 0));
    LOWBIT_RETURN_IF_ERROR(take(h + "post_attention_layernorm.weight", g + "ffn_norm.weight", {dim}, 0));
  }
  // Anything left over is a tensor lowbit would silently drop: refuse instead.
  const size_t expected = 2 + (stp->Find("lm_head.weight") ? 1 : 0) + 9 * c.num_hidden_layers;
  for (const StTensor* t : stp->tensors()) {
    if (t->name.ends_with("rotary_emb.inv_freq") || quant_names.count(t->name) != 0) continue;
    bool known = false;
    for (const PlannedTensor& p : plan.tensors) known |= p.data.data() == t->data.data();
    if (!known) {
      return Errorf("{}: tensor '{}' has no place in a Llama GGUF (expected {} tensors); is config.json "
                    "the right architecture?", weights, t->name, expected);
    }
  }
  return plan;
}

Expected<ConversionPlan> PlanSafetensors(const std::string& input) {
  LOWBIT_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open(input));
  auto fp = std::make_shared<SafetensorsFile>(std::move(f));
  ConversionPlan plan;
  plan.input_kind = "safetensors";
  plan.keep_alive.push_back(fp);
  plan.mappings.push_back(&fp->file());
  plan.kvs.push_back({"general.architecture", GgufValue::String("safetensors")});
  plan.kvs.push_back({"general.name", GgufValue::String(fs::path(input).stem().string())});
  for (const auto& [k, v] : fp->metadata()) plan.kvs.push_back({"safetensors." + k, GgufValue::String(v)});
  for (const StTensor& t : fp->tensors()) {
    if (t.name.size() > kGgufMaxTensorName) {
      return Errorf("{}: tensor name '{}' is longer than GGUF's {} bytes", input, t.name, kGgufMaxTensorName);
    }
    LOWBIT_ASSIGN_OR_RETURN(GgmlType type, GgmlTypeOfSafetensor(t, input));
    AddTensor(plan, t.name, ReversedShape(t.shape), type, t.data);
  }
  return plan;
}

Expected<ConversionPlan> PlanGguf(const std::string& input) {
  LOWBIT_ASSIGN_OR_RETURN(GgufFile g, GgufFile::Open(input));
  auto gp = std::make_shared<GgufFile>(std::move(g));
  ConversionPlan plan;
  plan.input_kind = "gguf";
  plan.keep_alive.push_back(gp);
  plan.mappings.push_back(&gp->file());
  plan.kvs = gp->kvs();
  for (const GgufTensorInfo& t : gp->tensors()) {
    AddTensor(plan, t.name, std::vector<uint64_t>(t.dims.begin(), t.dims.begin() + t.n_dims), t.type,
              {t.data, t.n_bytes});
  }
  return plan;
}

uint32_t FileTypeOf(GgmlType outtype) {
  switch (outtype) {
    case GgmlType::kQ4_0: return 2;   // LLAMA_FTYPE_MOSTLY_Q4_0
    case GgmlType::kQ4_1: return 3;   // LLAMA_FTYPE_MOSTLY_Q4_1
    case GgmlType::kQ8_0: return 7;   // LLAMA_FTYPE_MOSTLY_Q8_0
    case GgmlType::kF16: return 1;    // LLAMA_FTYPE_MOSTLY_F16
    case GgmlType::kBF16: return 32;  // LLAMA_FTYPE_MOSTLY_BF16
    default: return 0;                // LLAMA_FTYPE_ALL_F32
  }
}

}  // namespace

Expected<std::vector<GgufKv>> TokenizerKvs(const std::string& path, int64_t n_vocab) {
  if (HasGgufMagic(path)) {
    LOWBIT_ASSIGN_OR_RETURN(GgufFile g, GgufFile::Open(path));
    std::vector<GgufKv> kvs;
    for (const GgufKv& kv : g.kvs()) {
      if (kv.key.starts_with("tokenizer.")) kvs.push_back(kv);
    }
    if (kvs.empty()) return Errorf("{}: holds no tokenizer.* metadata", path);
    return kvs;
  }
  Expected<Vocab> v = Status::Error("unreachable");
  if (path.ends_with(".json")) v = LoadHfTokenizerJson(path);
  else if (path.ends_with(".model")) v = LoadSentencePieceModel(path);
  else v = LoadLlama2cTokenizer(path, static_cast<int32_t>(n_vocab));
  if (!v.ok()) return v.status();
  if (static_cast<int64_t>(v->tokens.size()) > n_vocab) {
    return Errorf("{}: holds {} tokens but the model's vocabulary has {}; wrong tokenizer?", path,
                  v->tokens.size(), n_vocab);
  }
  while (static_cast<int64_t>(v->tokens.size()) < n_vocab) {  // as convert_hf_to_gguf pads
    v->tokens.push_back("[PAD" + std::to_string(v->tokens.size()) + "]");
    if (!v->scores.empty()) v->scores.push_back(-1000.0f);
    v->token_types.push_back(static_cast<int32_t>(TokenType::kUserDefined));
  }
  return VocabKvs(*v);
}

uint64_t UnpermuteSourceRow(uint64_t out_row, uint64_t n_rows, uint32_t n_heads) {
  const uint64_t head_dim = n_rows / n_heads;
  const uint64_t h = out_row / head_dim, r = out_row % head_dim;
  const uint64_t i = r / 2, j = r % 2;
  return h * head_dim + j * (head_dim / 2) + i;
}

void CopyPermutedRows(const uint8_t* src, uint8_t* dst, int64_t rows, uint64_t row_bytes, uint32_t n_heads, bool to_gguf) {
  for (uint64_t r = 0; r < static_cast<uint64_t>(rows); ++r) {
    const uint64_t s = n_heads == 0 ? r : UnpermuteSourceRow(r, static_cast<uint64_t>(rows), n_heads);
    if (to_gguf) std::memcpy(dst + r * row_bytes, src + s * row_bytes, row_bytes);
    else std::memcpy(dst + s * row_bytes, src + r * row_bytes, row_bytes);
  }
}

namespace {

Expected<ConversionPlan> PlanInput(const std::string& input, const std::string& vocab, const LegacyGgmlOptions& legacy,
                                   bool materialize_legacy) {
  std::error_code ec;
  if (!fs::exists(input, ec)) return Errorf("{}: no such file or folder", input);
  if (fs::is_directory(input, ec)) {
    fs::path dir(input);
    if (!fs::exists(dir / "config.json")) {
      return Errorf("{}: a folder must be a Hugging Face model with config.json", input);
    }
    return PlanHuggingFace(dir, input, vocab);
  }
  if (HasGgufMagic(input)) return PlanGguf(input);
  if (HasLegacyGgmlMagic(input)) {
    LOWBIT_ASSIGN_OR_RETURN(GgmlLegacyFile f, GgmlLegacyFile::Open(input));
    return PlanLegacyGgml(std::make_shared<const GgmlLegacyFile>(std::move(f)), vocab, legacy, materialize_legacy);
  }
  if (LooksLikeSafetensors(input)) {
    fs::path dir = fs::path(input).parent_path();
    if (dir.empty()) dir = ".";
    if (fs::exists(dir / "config.json")) return PlanHuggingFace(dir, input, vocab);
    return PlanSafetensors(input);
  }
  return PlanLlama2c(input, vocab);
}

}  // namespace

Expected<ConversionPlan> PlanConversion(const std::string& input, const std::string& vocab,
                                        const LegacyGgmlOptions& legacy) {
  return PlanInput(input, vocab, legacy, /*materialize_legacy=*/true);
}

Status WriteConversion(const ConversionPlan& plan, const ConvertOptions& opts) {
  if (!IsFloatType(opts.outtype)) {
    return Errorf("--outtype must be f32, f16 or bf16 (use `lowbit quantize` for quantized types)");
  }
  if (!IsFloatType(opts.fallback) && (FromFloatFor(opts.fallback) == nullptr || TypeInfo(opts.fallback).internal)) {
    return Errorf("--fallback: lowbit cannot write {} tensors", TypeInfo(opts.fallback).name);
  }
  GgufWriter w;
  for (const GgufKv& kv : plan.kvs) w.SetKv(kv.key, kv.value);
  bool any_float_2d = false;
  // Quantized linears: the type of each is chosen now (reading it: a layer that disagrees with its
  // config fails here, before any file exists), the rows are made when the writer asks for them.
  struct Tally {
    int64_t count = 0, exact = 0;
    double max_abs = 0, max_rel = 0;
  };
  auto tallies = std::make_shared<std::map<GgmlType, Tally>>();
  auto mu = std::make_shared<std::mutex>();
  std::map<GgmlType, int64_t> quant_types;
  for (const PlannedTensor& t : plan.tensors) {
    if (t.quant == nullptr) continue;
    GgufChoice choice;
    if (opts.dequantize) {
      choice = {opts.outtype, opts.outtype == GgmlType::kF32, false, "--outtype"};
    } else {
      LOWBIT_ASSIGN_OR_RETURN(IntQuantLinear q, ReadPlannedLinear(*t.quant));
      choice = ChooseGgufType(q, opts.fallback);
    }
    ++quant_types[choice.type];
    std::vector<std::string>* notes = opts.notes;
    LOWBIT_RETURN_IF_ERROR(w.AddTensor(t.name, choice.type, t.dims, [&t, choice, notes, tallies, mu](std::span<uint8_t> dst) {
      Expected<IntQuantLinear> read = ReadPlannedLinear(*t.quant);
      if (!read.ok()) return read.status();
      const IntQuantLinear& q = *read;
      if (Status s = EncodeGgufRows(q, choice, dst); !s.ok()) return Errorf("{}: {}", t.name, s.message());
      const AddedError e = MeasureAddedError(q, choice.type, dst);
      if (choice.exact && e.differing != 0) {
        return Errorf("{}: {} rows differ from the checkpoint's values in {} weights (a lowbit bug)", t.name,
                      TypeInfo(choice.type).name, e.differing);
      }
      const double rel = e.weight_rms > 0 ? e.rms / e.weight_rms : 0;
      std::lock_guard<std::mutex> lock(*mu);
      Tally& tl = (*tallies)[choice.type];
      ++tl.count;
      tl.exact += e.differing == 0;
      tl.max_abs = std::max(tl.max_abs, e.max_abs);
      tl.max_rel = std::max(tl.max_rel, rel);
      if (notes != nullptr && e.differing != 0 && choice.type != GgmlType::kQ4_1) {
        notes->push_back(fmt::format("{}: {} ({}): added error max {:.3g}, rms {:.3g} ({:.3g} of the weights' rms)", t.name,
                                     TypeInfo(choice.type).name, choice.why, e.max_abs, e.rms, rel));
      }
      return OkStatus();
    }));
  }
  // Legacy GGML files: float tensors keep their type unless --outtype asks; blocks of an older layout
  // are converted as they are written.
  const bool legacy = plan.input_kind == "ggml-legacy";
  auto legacy_tally = std::make_shared<LegacyConversionTally>();
  // bitsandbytes linears: NF4 / FP4 / int8 are no ggml types, so they go into the closest one (IQ4_NL:
  // a 16-level non-uniform code book with a scale per 32; Q8_0 for LLM.int8) requantized from the
  // values bitsandbytes computes, with the error that adds, or into --outtype with --dequantize.
  for (const PlannedTensor& t : plan.tensors) {
    if (t.bnb == nullptr) continue;
    GgmlType type = opts.dequantize ? opts.outtype : t.bnb->eight_bit ? GgmlType::kQ8_0 : GgmlType::kIQ4_NL;
    if (!RowBytes(type, static_cast<uint64_t>(t.bnb->cols)).has_value()) type = GgmlType::kF16;
    LOWBIT_RETURN_IF_ERROR(ReadBnbValues(*t.bnb).status());  // a broken layer fails before the file exists
    ++quant_types[type];
    std::vector<std::string>* notes = opts.notes;
    LOWBIT_RETURN_IF_ERROR(w.AddTensor(t.name, type, t.dims, [&t, type, notes, tallies, mu](std::span<uint8_t> dst) {
      Expected<std::vector<float>> v = ReadBnbValues(*t.bnb);
      if (!v.ok()) return v.status();
      const int64_t rows = t.bnb->rows, cols = t.bnb->cols;
      const uint64_t rb = *RowBytes(type, static_cast<uint64_t>(cols));
      std::vector<float> back(static_cast<size_t>(cols));
      double max_abs = 0, se = 0, sw = 0;
      int64_t differing = 0;
      for (int64_t r = 0; r < rows; ++r) {
        const float* x = v->data() + r * cols;
        uint8_t* out = dst.data() + static_cast<uint64_t>(r) * rb;
        if (type == GgmlType::kF32) std::memcpy(out, x, static_cast<size_t>(cols) * 4);
        else if (type == GgmlType::kF16) ConvertF32ToF16(x, reinterpret_cast<uint16_t*>(out), static_cast<size_t>(cols));
        else if (type == GgmlType::kBF16) ConvertF32ToBf16(x, reinterpret_cast<uint16_t*>(out), static_cast<size_t>(cols));
        else FromFloatFor(type)(x, out, cols, nullptr);
        DequantizeRow(type, out, back.data(), cols);
        for (int64_t c = 0; c < cols; ++c) {
          const double e = static_cast<double>(back[c]) - x[c];
          differing += back[c] != x[c];
          max_abs = std::max(max_abs, std::fabs(e));
          se += e * e;
          sw += static_cast<double>(x[c]) * x[c];
        }
      }
      const double n = static_cast<double>(rows * cols);
      const double rms = std::sqrt(se / n), wrms = std::sqrt(sw / n), rel = wrms > 0 ? rms / wrms : 0;
      std::lock_guard<std::mutex> lock(*mu);
      Tally& tl = (*tallies)[type];
      ++tl.count;
      tl.exact += differing == 0;
      tl.max_abs = std::max(tl.max_abs, max_abs);
      tl.max_rel = std::max(tl.max_rel, rel);
      if (notes != nullptr && differing != 0) {
        notes->push_back(fmt::format("{}: {} (bitsandbytes {}): added error max {:.3g}, rms {:.3g} ({:.3g} of the weights' rms)",
                                     t.name, TypeInfo(type).name, t.bnb->eight_bit ? "int8" : "4-bit", max_abs, rms, rel));
      }
      return OkStatus();
    }));
  }
  for (const PlannedTensor& t : plan.tensors) {
    if (t.quant != nullptr || t.bnb != nullptr) continue;
    if (t.legacy_layout != LegacyBlockLayout::kV3) {
      LOWBIT_RETURN_IF_ERROR(w.AddTensor(t.name, t.source_type, t.dims, [&t, &plan, mu, legacy_tally](std::span<uint8_t> dst) {
        LegacyConversionTally one;
        Status s = ConvertLegacyTensor(t, dst, &one);
        for (const MappedFile* m : plan.mappings) m->DropPages(t.data);
        std::lock_guard<std::mutex> lock(*mu);
        legacy_tally->Merge(one);
        return s;
      }));
      continue;
    }
    GgmlType out = t.source_type;
    const bool keep_float = legacy && !opts.dequantize;
    if (IsFloatType(t.source_type) && !keep_float) out = t.dims.size() >= 2 ? opts.outtype : GgmlType::kF32;
    any_float_2d |= IsFloatType(t.source_type) && t.dims.size() >= 2 && !keep_float;
    LOWBIT_RETURN_IF_ERROR(w.AddTensor(t.name, out, t.dims, [&t, &plan, out](std::span<uint8_t> dst) {
      Status s = ConvertTensorRows(t, out, dst);
      for (const MappedFile* m : plan.mappings) m->DropPages(t.data);  // done with these input pages
      return s;
    }));
  }
  if (any_float_2d && plan.input_kind != "safetensors" && !legacy) {
    w.SetKv("general.file_type", GgufValue::U32(FileTypeOf(opts.outtype)));
  }
  if (!quant_types.empty()) {
    // The file type of the most common type among the quantized linears (what llama.cpp shows).
    const auto most = std::max_element(quant_types.begin(), quant_types.end(),
                                       [](const auto& a, const auto& b) { return a.second < b.second; });
    w.SetKv("general.file_type", GgufValue::U32(FileTypeOf(most->first)));
  }
  LOWBIT_RETURN_IF_ERROR(w.Write(opts.output, opts.show_progress));
  if (opts.notes != nullptr) {
    opts.notes->insert(opts.notes->end(), plan.notes.begin(), plan.notes.end());
    if (legacy) {
      std::string note = legacy_tally->Note(plan.input_format);
      if (!note.empty()) opts.notes->push_back(std::move(note));
    }
  }
  if (opts.notes != nullptr && !tallies->empty()) {
    std::string line = "quantized linears:";
    for (const auto& [type, tl] : *tallies) {
      line += fmt::format(" {} {}", tl.count, TypeInfo(type).name);
      if (tl.exact == tl.count) line += " (exact)";
      else line += fmt::format(" ({} exact; added error max {:.3g}, rms up to {:.3g} of the weights' rms)", tl.exact, tl.max_abs, tl.max_rel);
      line += ",";
    }
    line.pop_back();
    opts.notes->push_back(line);
  }
  return OkStatus();
}

Status Convert(const ConvertOptions& opts) {
  LOWBIT_ASSIGN_OR_RETURN(ConversionPlan plan, PlanInput(opts.input, opts.vocab, opts.legacy, /*materialize_legacy=*/false));
  return WriteConversion(plan, opts);
}

}  // namespace lowbit

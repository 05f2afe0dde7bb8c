// Legacy llama.cpp files ('ggml', 'ggmf', 'ggjt' v1-v3) as a llama ConversionPlan: hyperparameters
// as the old loader derived them, the vocabulary as convert-llama-ggml-to-gguf.py typed it, tensors
// renamed to GGUF's names, and blocks of older layouts converted to today's.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fmt/ranges.h>

#include "lowbit/base/mapped_file.h"
#include "lowbit/numeric/dequant.h"
#include "lowbit/pipeline/convert.h"
#include "lowbit/pipeline/llama_metadata.h"
#include "lowbit/quant/quantize.h"

namespace lowbit {
namespace fs = std::filesystem;
namespace {

// The old loader's feed-forward width (llama.cpp, mid-2023): n_ff = ceil(f * (2 * 4 * n_embd / 3)
// / n_mult) * n_mult in integers, with f = 1.3 for an 80-layer model with 8 query heads per KV head
// (Llama 2 70B) and 1 otherwise.
uint32_t LegacyFeedForwardLength(const GgmlLegacyHparams& hp, uint32_t n_head_kv) {
  const uint32_t n_ff_raw = 2 * (4 * hp.n_embd) / 3;
  const float f_ffn_mult = hp.n_layer == 80 && hp.n_head == 8 * n_head_kv ? 1.3f : 1.0f;
  const auto n_ff_mult = static_cast<uint32_t>(f_ffn_mult * static_cast<float>(n_ff_raw));
  return ((n_ff_mult + hp.n_mult - 1) / hp.n_mult) * hp.n_mult;
}

// The vocabulary as convert-llama-ggml-to-gguf.py wrote it: ids 0/1/2 are <unk>/<s>/</s>; empty
// pieces are control tokens; one-byte pieces among ids 3..258 are the byte tokens <0xNN>; spaces go
// back to U+2581. 'ggml' files have no scores (written as 0).
Vocab LegacyVocab(const GgmlLegacyFile& f) {
  Vocab v;
  v.model = "llama";
  v.unk_id = 0;
  v.bos_id = 1;
  v.eos_id = 2;
  const size_t n = f.tokens().size();
  v.tokens.resize(n);
  v.token_types.resize(n);
  v.scores = f.has_scores() ? f.scores() : std::vector<float>(n, 0.0f);
  for (size_t i = 0; i < n; ++i) {
    const std::string& raw = f.tokens()[i];
    TokenType type = TokenType::kNormal;
    std::string text;
    if (i <= 2) {
      text = i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>";
      type = i == 0 ? TokenType::kUnknown : TokenType::kControl;
    } else if (raw.empty()) {
      type = TokenType::kControl;
    } else if (i <= 258 && raw.size() == 1) {
      text = fmt::format("<0x{:02X}>", static_cast<uint8_t>(raw[0]));
      type = TokenType::kByte;
    } else {
      for (char ch : raw) {
        if (ch == ' ') text += "\xe2\x96\x81";
        else text += ch;
      }
    }
    v.tokens[i] = std::move(text);
    v.token_types[i] = static_cast<int32_t>(type);
  }
  return v;
}

struct Expected2d {
  std::string gguf;
  std::vector<uint64_t> dims;
};

}  // namespace

bool HasLegacyGgmlMagic(const std::string& path) {
  auto map = MappedFile::Open(path);
  if (!map.ok() || map->size() < 4) return false;
  uint32_t magic;
  std::memcpy(&magic, map->data(), 4);
  return magic == 0x67676d6c || magic == 0x67676d66 || magic == 0x67676a74;
}

void LegacyConversionTally::Merge(const LegacyConversionTally& o) {
  for (const auto& [type, c] : o.by_type) {
    Counts& m = by_type[type];
    m.blocks += c.blocks;
    m.requantized += c.requantized;
    m.tensors += c.tensors;
    m.max_abs_change = std::max(m.max_abs_change, c.max_abs_change);
  }
}

std::string LegacyConversionTally::Note(const std::string& format) const {
  std::string parts;
  for (const auto& [type, c] : by_type) {
    if (c.requantized == 0) continue;
    if (!parts.empty()) parts += "; ";
    parts += fmt::format("{} of {} {} blocks (largest change of a weight {:.3g})", c.requantized, c.blocks,
                         TypeInfo(type).name, c.max_abs_change);
  }
  if (parts.empty()) return "";
  return fmt::format("{} blocks store F32 scales that today's F16 scales cannot hold exactly: requantized {} from "
                     "their dequantized values (same type); every other block was kept bit for bit",
                     format, parts);
}

Status ConvertLegacyTensor(const PlannedTensor& t, std::span<uint8_t> dst, LegacyConversionTally* tally) {
  const GgmlType type = t.source_type;
  const uint64_t in_bytes = LegacyBlockBytes(type, t.legacy_layout), out_bytes = TypeInfo(type).block_bytes;
  const uint64_t n_blocks = t.data.size() / in_bytes;
  if (n_blocks * in_bytes != t.data.size() || n_blocks * out_bytes != dst.size()) {
    return Errorf("{}: {} bytes of legacy {} blocks do not fill {} bytes", t.name, t.data.size(),
                  TypeInfo(type).name, dst.size());
  }
  FromFloatFn quantize = FromFloatFor(type);
  if (quantize == nullptr) return Errorf("{}: lowbit cannot write {} blocks", t.name, TypeInfo(type).name);
  LegacyConversionTally::Counts c;
  c.tensors = 1;
  c.blocks = n_blocks;
  float x[32], y[32];
  for (uint64_t b = 0; b < n_blocks; ++b) {
    const uint8_t* in = t.data.data() + b * in_bytes;
    uint8_t* out = dst.data() + b * out_bytes;
    if (RepackLegacyBlock(type, t.legacy_layout, in, out)) continue;
    DequantizeLegacyBlock(type, t.legacy_layout, in, x);
    quantize(x, out, 32, nullptr);
    DequantizeRow(type, out, y, 32);
    for (int j = 0; j < 32; ++j) c.max_abs_change = std::max(c.max_abs_change, static_cast<double>(std::fabs(x[j] - y[j])));
    ++c.requantized;
  }
  if (tally != nullptr) {
    LegacyConversionTally one;
    one.by_type[type] = c;
    tally->Merge(one);
  }
  return OkStatus();
}

Expected<ConversionPlan> PlanLegacyGgml(std::shared_ptr<const GgmlLegacyFile> file, const std::string& vocab,
                                        const LegacyGgmlOptions& opts, bool materialize) {
  const GgmlLegacyFile& f = *file;
  const GgmlLegacyHparams& hp = f.hparams();
  const std::string& where = f.name();
  const uint64_t n_embd = hp.n_embd, n_vocab = hp.n_vocab, head_dim = hp.n_embd / hp.n_head;
  if (hp.n_rot != head_dim) {
    return Errorf("{}: n_rot = {} but n_embd / n_head = {}; llama files rotate whole heads", where, hp.n_rot, head_dim);
  }
  // The header has no KV head count (the old loader took --gqa): it is read off the K weight.
  const GgmlLegacyTensor* wk = f.FindTensor("layers.0.attention.wk.weight");
  if (wk == nullptr) return Errorf("{}: no tensor 'layers.0.attention.wk.weight'; not a llama model?", where);
  const uint64_t kv_rows = wk->dims.size() == 2 ? wk->dims[1] : 0;
  if (wk->dims[0] != n_embd || kv_rows == 0 || kv_rows % head_dim != 0 || hp.n_head % (kv_rows / head_dim) != 0) {
    return Errorf("{}: tensor 'layers.0.attention.wk.weight' has shape [{}]; with n_embd = {} and n_head = {} it "
                  "must be [{}, a multiple of {} that makes n_head a multiple of the KV heads]",
                  where, fmt::join(wk->dims, ", "), hp.n_embd, hp.n_head, hp.n_embd, head_dim);
  }
  const auto n_head_kv = static_cast<uint32_t>(kv_rows / head_dim);
  const uint32_t n_ff = LegacyFeedForwardLength(hp, n_head_kv);

  if (hp.n_layer > f.tensors().size()) {  // before building a table per layer
    return Errorf("{}: n_layer = {} but the file holds only {} tensors (a llama model has 9 per layer, plus 3)", where,
                  hp.n_layer, f.tensors().size());
  }
  // Every tensor the llama loader reads, by its legacy name.
  std::map<std::string, Expected2d> expect;
  expect["tok_embeddings.weight"] = {"token_embd.weight", {n_embd, n_vocab}};
  expect["norm.weight"] = {"output_norm.weight", {n_embd}};
  expect["output.weight"] = {"output.weight", {n_embd, n_vocab}};
  for (uint32_t l = 0; l < hp.n_layer; ++l) {
    const std::string o = "layers." + std::to_string(l) + ".", g = "blk." + std::to_string(l) + ".";
    expect[o + "attention.wq.weight"] = {g + "attn_q.weight", {n_embd, n_embd}};
    expect[o + "attention.wk.weight"] = {g + "attn_k.weight", {n_embd, kv_rows}};
    expect[o + "attention.wv.weight"] = {g + "attn_v.weight", {n_embd, kv_rows}};
    expect[o + "attention.wo.weight"] = {g + "attn_output.weight", {n_embd, n_embd}};
    expect[o + "attention_norm.weight"] = {g + "attn_norm.weight", {n_embd}};
    expect[o + "feed_forward.w1.weight"] = {g + "ffn_gate.weight", {n_embd, n_ff}};
    expect[o + "feed_forward.w2.weight"] = {g + "ffn_down.weight", {n_ff, n_embd}};
    expect[o + "feed_forward.w3.weight"] = {g + "ffn_up.weight", {n_embd, n_ff}};
    expect[o + "ffn_norm.weight"] = {g + "ffn_norm.weight", {n_embd}};
  }
  if (f.tensors().size() != expect.size()) {
    for (const auto& [name, e] : expect) {
      if (f.FindTensor(name) == nullptr) {
        return Errorf("{}: no tensor '{}' (a llama model with n_layer = {} has {} tensors; the file has {}); a "
                      "multi-part model (.bin, .bin.1, ...) must be merged first", where, name, hp.n_layer,
                      expect.size(), f.tensors().size());
      }
    }
  }

  ConversionPlan plan;
  plan.input_kind = "ggml-legacy";
  plan.input_format = f.FormatName();
  plan.keep_alive.push_back(std::const_pointer_cast<GgmlLegacyFile>(file));  // held, never changed
  plan.mappings.push_back(&f.file());
  LlamaHparams lh;
  lh.name = fs::path(where).stem().string();
  lh.context_length = opts.context_length;
  lh.embedding_length = hp.n_embd;
  lh.feed_forward_length = n_ff;
  lh.block_count = hp.n_layer;
  lh.head_count = hp.n_head;
  lh.head_count_kv = n_head_kv;
  lh.rope_dimension_count = hp.n_rot;
  lh.rms_epsilon = opts.rms_epsilon;
  lh.vocab_size = hp.n_vocab;
  plan.kvs = LlamaModelKvs(lh);
  plan.kvs.push_back({"general.description",
                      GgufValue::String(fmt::format("converted from legacy {} by lowbit", f.FormatName()))});
  plan.kvs.push_back({"general.file_type", GgufValue::U32(hp.ftype)});
  if (vocab.empty()) {
    const std::vector<GgufKv> tok = VocabKvs(LegacyVocab(f));
    plan.kvs.insert(plan.kvs.end(), tok.begin(), tok.end());
    if (!f.has_scores()) {
      plan.notes.push_back(fmt::format("{}: an unversioned 'ggml' file stores no token scores; they are written as 0, "
                                       "which changes how text is tokenized: pass the model's tokenizer with --vocab "
                                       "(tokenizer.model or a GGUF) to get them", where));
    }
  } else {
    LOWBIT_ASSIGN_OR_RETURN(auto tok, TokenizerKvs(vocab, hp.n_vocab));
    plan.kvs.insert(plan.kvs.end(), tok.begin(), tok.end());
  }

  bool any_quantized = false;
  LegacyConversionTally tally;
  for (const GgmlLegacyTensor& t : f.tensors()) {
    auto it = expect.find(t.name);
    if (it == expect.end()) {
      return Errorf("{}: tensor '{}' has no place in a llama model with n_layer = {}", where, t.name, hp.n_layer);
    }
    if (t.dims != it->second.dims) {
      return Errorf("{}: tensor '{}' has shape [{}], the hyperparameters imply [{}] (n_ff = {} from n_mult = {})",
                    where, t.name, fmt::join(t.dims, ", "), fmt::join(it->second.dims, ", "), n_ff, hp.n_mult);
    }
    if (t.dims.size() == 1 && t.type != GgmlType::kF32) {
      return Errorf("{}: tensor '{}' is {}; llama's norm weights are F32", where, t.name, TypeInfo(t.type).name);
    }
    any_quantized |= TypeInfo(t.type).quantized;
    PlannedTensor p{it->second.gguf, t.dims, t.type, t.data, 0};
    p.source_name = t.name;
    if (LegacyLayoutDiffers(t.type, f.layout())) {
      p.legacy_layout = f.layout();
      if (materialize) {
        auto buf = std::make_shared<std::vector<uint8_t>>(*RowBytes(t.type, t.n_elements()));
        LOWBIT_RETURN_IF_ERROR(ConvertLegacyTensor(p, *buf, &tally));
        p.data = *buf;
        p.legacy_layout = LegacyBlockLayout::kV3;
        plan.keep_alive.push_back(buf);
      }
    }
    plan.tensors.push_back(std::move(p));
  }
  if (any_quantized) plan.kvs.push_back({"general.quantization_version", GgufValue::U32(2)});
  if (std::string note = tally.Note(f.FormatName()); !note.empty()) plan.notes.push_back(note);
  return plan;
}

}  // namespace lowbit

#include "lowbit/pipeline/llama_metadata.h"

namespace lowbit {

std::vector<GgufKv> LlamaModelKvs(const LlamaHparams& hp) {
  std::vector<GgufKv> kv;
  kv.push_back({"general.architecture", GgufValue::String("llama")});
  kv.push_back({"general.name", GgufValue::String(hp.name)});
  kv.push_back({"llama.vocab_size", GgufValue::U32(hp.vocab_size)});
  kv.push_back({"llama.context_length", GgufValue::U32(hp.context_length)});
  kv.push_back({"llama.embedding_length", GgufValue::U32(hp.embedding_length)});
  kv.push_back({"llama.feed_forward_length", GgufValue::U32(hp.feed_forward_length)});
  kv.push_back({"llama.attention.head_count", GgufValue::U32(hp.head_count)});
  kv.push_back({"llama.attention.head_count_kv", GgufValue::U32(hp.head_count_kv)});
  kv.push_back({"llama.block_count", GgufValue::U32(hp.block_count)});
  kv.push_back({"llama.rope.dimension_count", GgufValue::U32(hp.rope_dimension_count)});
  kv.push_back({"llama.rope.freq_base", GgufValue::F32(hp.rope_freq_base)});
  kv.push_back({"llama.attention.layer_norm_rms_epsilon", GgufValue::F32(hp.rms_epsilon)});
  return kv;
}

std::vector<GgufKv> VocabKvs(const Vocab& v) {
  std::vector<GgufKv> kv;
  kv.push_back({"tokenizer.ggml.model", GgufValue::String(v.model)});
  if (!v.pre.empty()) kv.push_back({"tokenizer.ggml.pre", GgufValue::String(v.pre)});
  std::vector<GgufValue> tokens, scores, types, merges;
  tokens.reserve(v.tokens.size());
  for (const std::string& t : v.tokens) tokens.push_back(GgufValue::String(t));
  for (float s : v.scores) scores.push_back(GgufValue::F32(s));
  for (int32_t t : v.token_types) types.push_back(GgufValue::I32(t));
  for (const std::string& m : v.merges) merges.push_back(GgufValue::String(m));
  kv.push_back({"tokenizer.ggml.tokens", GgufValue::Array(GgufValueType::kString, std::move(tokens))});
  if (!scores.empty()) kv.push_back({"tokenizer.ggml.scores", GgufValue::Array(GgufValueType::kF32, std::move(scores))});
  kv.push_back({"tokenizer.ggml.token_type", GgufValue::Array(GgufValueType::kI32, std::move(types))});
  if (!merges.empty()) kv.push_back({"tokenizer.ggml.merges", GgufValue::Array(GgufValueType::kString, std::move(merges))});
  auto id = [&](const char* key, int64_t value) {
    if (value >= 0) kv.push_back({key, GgufValue::U32(static_cast<uint32_t>(value))});
  };
  id("tokenizer.ggml.bos_token_id", v.bos_id);
  id("tokenizer.ggml.eos_token_id", v.eos_id);
  id("tokenizer.ggml.unknown_token_id", v.unk_id);
  id("tokenizer.ggml.padding_token_id", v.pad_id);
  if (v.add_bos >= 0) kv.push_back({"tokenizer.ggml.add_bos_token", GgufValue::Bool(v.add_bos != 0)});
  if (v.add_eos >= 0) kv.push_back({"tokenizer.ggml.add_eos_token", GgufValue::Bool(v.add_eos != 0)});
  if (v.add_space_prefix >= 0) {
    kv.push_back({"tokenizer.ggml.add_space_prefix", GgufValue::Bool(v.add_space_prefix != 0)});
  }
  return kv;
}

}  // namespace lowbit

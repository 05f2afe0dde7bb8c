#include "lowbit/pipeline/llama_metadata.h"

#include <cmath>

namespace lowbit {

std::vector<GgufKv> LlamaModelKvs(const LlamaHparams& hp) {
  std::vector<GgufKv> kv;
  kv.push_back({"general.architecture", GgufValue::String(hp.arch)});
  kv.push_back({"general.name", GgufValue::String(hp.name)});
  kv.push_back({hp.arch + ".vocab_size", GgufValue::U32(hp.vocab_size)});
  kv.push_back({hp.arch + ".context_length", GgufValue::U32(hp.context_length)});
  kv.push_back({hp.arch + ".embedding_length", GgufValue::U32(hp.embedding_length)});
  kv.push_back({hp.arch + ".feed_forward_length", GgufValue::U32(hp.feed_forward_length)});
  kv.push_back({hp.arch + ".attention.head_count", GgufValue::U32(hp.head_count)});
  kv.push_back({hp.arch + ".attention.head_count_kv", GgufValue::U32(hp.head_count_kv)});
  kv.push_back({hp.arch + ".block_count", GgufValue::U32(hp.block_count)});
  kv.push_back({hp.arch + ".rope.dimension_count", GgufValue::U32(hp.rope_dimension_count)});
  kv.push_back({hp.arch + ".rope.freq_base", GgufValue::F32(hp.rope_freq_base)});
  kv.push_back({hp.arch + ".attention.layer_norm_rms_epsilon", GgufValue::F32(hp.rms_epsilon)});
  return kv;
}

std::vector<float> Llama3RopeFactors(float base, int64_t head_dim, float factor, float low_freq_factor, float high_freq_factor,
                                     float original_context) {
  const double low_wavelen = original_context / low_freq_factor, high_wavelen = original_context / high_freq_factor;
  std::vector<float> f;
  for (int64_t i = 0; i < head_dim; i += 2) {
    // The converter computes the frequencies in float32 (torch), then the rest in Python floats.
    const float freq = 1.0f / std::pow(base, static_cast<float>(i) / static_cast<float>(head_dim));
    const double wavelen = 2 * M_PI / freq;
    if (wavelen < high_wavelen) {
      f.push_back(1.0f);
    } else if (wavelen > low_wavelen) {
      f.push_back(factor);
    } else {
      const double smooth = (original_context / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
      f.push_back(static_cast<float>(1.0 / ((1 - smooth) / factor + smooth)));
    }
  }
  return f;
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

// Hugging Face model folders: config.json (Llama-family hyperparameters) and tokenizer.json.
//
// config.json keys read: architectures / model_type, hidden_size, intermediate_size,
// num_hidden_layers, num_attention_heads, num_key_value_heads (default: num_attention_heads),
// head_dim (default hidden_size / heads), vocab_size, max_position_embeddings, rms_norm_eps,
// rope_theta, rope_scaling (Llama 3.1's "llama3" and "linear"), tie_word_embeddings, bos_token_id,
// eos_token_id, torch_dtype. Values are checked for
// type and range; a model that is not Llama-like is rejected with its architecture named.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "lowbit/base/status.h"
#include "lowbit/tokenizer/vocab.h"

namespace lowbit {

struct HfLlamaConfig {
  std::string architecture;
  int64_t hidden_size = 0, intermediate_size = 0, num_hidden_layers = 0, num_attention_heads = 0,
          num_key_value_heads = 0, head_dim = 0, vocab_size = 0, max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  // rope_scaling: type "" (none), "llama3" (factor, low_freq_factor, high_freq_factor,
  // original_max_position_embeddings) or "linear" (factor).
  std::string rope_scaling_type;
  double rope_factor = 1.0, rope_low_freq_factor = 1.0, rope_high_freq_factor = 4.0, rope_original_context = 8192.0;
  bool tie_word_embeddings = false;
  int64_t bos_token_id = -1, eos_token_id = -1;
  std::string torch_dtype;
};

Expected<HfLlamaConfig> ParseHfConfig(std::string_view json, const std::string& name);
Expected<HfLlamaConfig> LoadHfConfig(const std::string& path);

// tokenizer.json with a BPE model. SentencePiece-style vocabularies (byte_fallback, U+2581 pieces)
// become tokenizer.ggml.model "llama" with scores -(merge rank) of the merge that makes each piece
// (0 for pieces no merge makes), as llama2.c's tokenizer.bin scores them; byte-level ones become
// "gpt2" with their merges. Added tokens are control (special) or user-defined tokens.
Expected<Vocab> ParseHfTokenizerJson(std::string_view json, const std::string& name);
Expected<Vocab> LoadHfTokenizerJson(const std::string& path);

// Reads a whole small text file (config.json and friends) with a size limit.
Expected<std::string> ReadTextFile(const std::string& path, uint64_t max_bytes = 256ull << 20);

}  // namespace lowbit

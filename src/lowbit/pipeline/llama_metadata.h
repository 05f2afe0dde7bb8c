// GGUF metadata for Llama-architecture models, as llama.cpp reads it (llama.* and tokenizer.ggml.*
// keys), built from hyperparameters and a Vocab.
#pragma once

#include <string>
#include <vector>

#include "lowbit/formats/gguf.h"
#include "lowbit/tokenizer/vocab.h"

namespace lowbit {

struct LlamaHparams {
  std::string arch = "llama";  // general.architecture; the keys below are written under it
  std::string name = "llama";
  uint32_t context_length = 0;
  uint32_t embedding_length = 0;
  uint32_t feed_forward_length = 0;
  uint32_t block_count = 0;
  uint32_t head_count = 0;
  uint32_t head_count_kv = 0;
  uint32_t rope_dimension_count = 0;
  float rope_freq_base = 10000.0f;
  float rms_epsilon = 1e-5f;
  uint32_t vocab_size = 0;
};

// general.* and llama.* keys, in the order llama.cpp's converters write them.
std::vector<GgufKv> LlamaModelKvs(const LlamaHparams& hp);
// Llama 3.1's RoPE frequency smoothing (rope_scaling type "llama3": factor 32 for 3.2 and 8 for 3.1,
// low / high frequency factors 1 / 4, original context 8192) as llama.cpp's converter turns it into
// rope_freqs.weight: the [head_dim / 2] factors theta_i is divided by.
std::vector<float> Llama3RopeFactors(float base, int64_t head_dim, float factor = 32.0f, float low_freq_factor = 1.0f,
                                     float high_freq_factor = 4.0f, float original_context = 8192.0f);

// tokenizer.ggml.* keys for a vocabulary.
std::vector<GgufKv> VocabKvs(const Vocab& v);

}  // namespace lowbit

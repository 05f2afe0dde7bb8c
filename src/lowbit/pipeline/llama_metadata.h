// GGUF metadata for Llama-architecture models, as llama.cpp reads it (llama.* and tokenizer.ggml.*
// keys), built from hyperparameters and a Vocab.
#pragma once

#include <string>
#include <vector>

#include "lowbit/formats/gguf.h"
#include "lowbit/tokenizer/vocab.h"

namespace lowbit {

struct LlamaHparams {
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
// tokenizer.ggml.* keys for a vocabulary.
std::vector<GgufKv> VocabKvs(const Vocab& v);

}  // namespace lowbit

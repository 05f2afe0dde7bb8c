// llama2.c checkpoints (legacy "v0" export of run.c) and llama2.c tokenizer.bin files.
//
// Checkpoint: 7 x int32 header (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
// a negative vocab_size means the classifier is stored separately), then fp32 arrays, weights
// [out][in] row-major: token_embedding[vocab][dim], rms_att[L][dim], wq[L][dim][dim],
// wk[L][kv_dim][dim], wv[L][kv_dim][dim], wo[L][dim][dim], rms_ffn[L][dim], w1[L][hidden][dim],
// w2[L][dim][hidden], w3[L][hidden][dim], rms_final[dim], freq_cis (seq_len*head_dim floats,
// unused), then wcls[vocab][dim] only when vocab_size < 0. The file size must match exactly.
// tokenizer.bin: u32 max_token_length, then per token: f32 score, i32 length, bytes.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "lowbit/base/mapped_file.h"
#include "lowbit/base/status.h"
#include "lowbit/tokenizer/vocab.h"

namespace lowbit {

struct Llama2cConfig {
  int32_t dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, vocab_size = 0, seq_len = 0;
  bool shared_classifier = true;
  int32_t head_dim() const { return dim / n_heads; }
  int32_t kv_dim() const { return head_dim() * n_kv_heads; }
};

enum class Llama2cWeight { kTokenEmbedding, kRmsAtt, kWq, kWk, kWv, kWo, kRmsFfn, kW1, kW2, kW3,
                           kRmsFinal, kClassifier };

class Llama2cCheckpoint {
 public:
  static Expected<Llama2cCheckpoint> Open(const std::string& path);
  static Expected<Llama2cCheckpoint> Parse(std::span<const uint8_t> bytes, const std::string& name);

  const Llama2cConfig& config() const { return config_; }
  // fp32 data of one weight; `layer` is ignored for whole-model weights. The classifier of a shared
  // checkpoint is the token embedding.
  std::span<const uint8_t> Weight(Llama2cWeight w, int layer = 0) const;

  // The mapping behind the views (empty when built with Parse()).
  const MappedFile& file() const { return map_; }

 private:
  Status ParseAll(std::span<const uint8_t> bytes);
  MappedFile map_;
  std::string name_;
  Llama2cConfig config_;
  std::span<const uint8_t> bytes_;
  uint64_t offsets_[12] = {};  // start of each weight array (layer 0)
  uint64_t per_layer_[12] = {};  // bytes per layer (0 for whole-model weights)
};

// Reads `n_vocab` tokens. Token texts are raw bytes; llama2.c uses ' ' where SentencePiece has U+2581.
Expected<Vocab> ParseLlama2cTokenizer(std::span<const uint8_t> bytes, int32_t n_vocab,
                                      const std::string& name);
// As llama.cpp's convert-llama2c-to-ggml: ids 0/1/2 become <unk>/<s>/</s>, "<0xNN>" pieces are byte
// tokens, spaces are written as U+2581.
Expected<Vocab> LoadLlama2cTokenizer(const std::string& path, int32_t n_vocab);

}  // namespace lowbit

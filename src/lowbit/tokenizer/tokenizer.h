// One entry point for encoding text with a GGUF vocabulary: SentencePiece-style ("llama") or
// byte-level BPE ("gpt2"), BOS first when asked and the vocabulary has one.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/tokenizer/vocab.h"

namespace lowbit {

class Tokenizer {
 public:
  static Expected<std::unique_ptr<Tokenizer>> Create(const Vocab& vocab);
  virtual ~Tokenizer() = default;

  virtual std::vector<int32_t> Encode(std::string_view text) const = 0;
  virtual std::string Decode(int32_t token) const = 0;
  // Encode with BOS first when the vocabulary adds one (tokenizer.ggml.add_bos_token).
  std::vector<int32_t> EncodeWithBos(std::string_view text) const;

 protected:
  explicit Tokenizer(const Vocab& v) : vocab_(v) {}
  const Vocab& vocab_;
};

}  // namespace lowbit

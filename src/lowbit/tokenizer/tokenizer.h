// One entry point for encoding text with a GGUF vocabulary: SentencePiece-style ("llama"),
// byte-level BPE ("gpt2") or Gemma 4's SentencePiece-style BPE ("gemma4"), BOS first when asked and
// the vocabulary has one.
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

  // Encode as llama.cpp does without parsing special tokens (parse_special=false): user-defined
  // (added) tokens written in the text still become their tokens, control and unknown pieces are
  // plain text. No BOS.
  std::vector<int32_t> Encode(std::string_view text) const;
  virtual std::string Decode(int32_t token) const = 0;
  // Encode with BOS first when the vocabulary adds one (tokenizer.ggml.add_bos_token).
  std::vector<int32_t> EncodeWithBos(std::string_view text) const;
  // Encode text in which special tokens (control, user-defined and unknown pieces such as "<s>" or
  // "<|im_start|>") appear written out, as a chat template renders them: each becomes its token
  // (llama.cpp's parse_special), the text between them is encoded as usual, a SentencePiece
  // vocabulary's leading space going before the first text and each text after a special token.
  // With add_bos, BOS first when the vocabulary adds one and the text does not begin with it.
  std::vector<int32_t> EncodeSpecial(std::string_view text, bool add_bos = true) const;

 protected:
  explicit Tokenizer(const Vocab& v);
  // Text between special tokens; `after_special`: it starts the text or follows a special token.
  virtual std::vector<int32_t> EncodeFragment(std::string_view text, bool after_special) const = 0;
  const Vocab& vocab_;

 private:
  // A token matched in the raw text before encoding, with llama.cpp's attributes for it.
  struct Special {
    int32_t id;
    bool control;  // control or unknown: matched only when special tokens are parsed
    bool lstrip, rstrip;  // whitespace before / after it is dropped
  };
  // llama.cpp's tokenizer_st_partition: each special token, longest first, splits the text not
  // matched yet; then the fragments are encoded in order.
  std::vector<int32_t> Partitioned(std::string_view text, bool parse_special) const;
  std::vector<Special> special_;  // longest text first
};

}  // namespace lowbit

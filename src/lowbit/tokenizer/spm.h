// SentencePiece-style BPE tokenizer (GGUF `tokenizer.ggml.model = "llama"`), as llama.cpp runs it.
//
// Encode: optionally prefix a space, write spaces as U+2581, split into UTF-8 characters, then
// repeatedly merge the adjacent pair whose concatenation is a vocabulary piece with the highest
// score (ties: the leftmost pair). Pieces left that are not in the vocabulary become byte tokens
// `<0xNN>`. No BOS/EOS is added and special-token text is not parsed (the caller decides).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lowbit/tokenizer/vocab.h"

namespace lowbit {

class SpmTokenizer {
 public:
  explicit SpmTokenizer(const Vocab& vocab);

  std::vector<int32_t> Encode(std::string_view text) const { return Encode(text, add_space_prefix_); }
  // With the leading space (U+2581) the vocabulary asks for, or without it (text that follows a
  // special token mid-way, as llama.cpp encodes it).
  std::vector<int32_t> Encode(std::string_view text, bool space_prefix) const;
  // The text of one token (U+2581 shown as a space, byte tokens as their byte).
  std::string Decode(int32_t token) const;

 private:
  int32_t Find(std::string_view piece) const;
  void AppendBytes(std::string_view text, std::vector<int32_t>& out) const;

  const Vocab& vocab_;
  std::unordered_map<std::string, int32_t> ids_;
  int32_t byte_ids_[256];
  bool add_space_prefix_;
};

}  // namespace lowbit

// Byte-level BPE tokenizer (GGUF `tokenizer.ggml.model = "gpt2"`), as llama.cpp runs it.
//
// Encode: user-defined (added) tokens are matched in the raw text first, longest first; then
// split the text with the vocabulary's pre-tokenizer regular expressions (PCRE2 with
// Unicode properties; each expression splits the pieces the previous one left, keeping the text
// between matches), map every byte of a piece to its GPT-2 "byte-to-unicode" character, then merge
// adjacent symbols by merge rank (lowest first, leftmost on ties) and look the results up.
// Pre-tokenizers (tokenizer.ggml.pre), llama.cpp's expression lists: gpt-2/mpt/olmo, deepseek-llm,
// deepseek-coder, falcon, starcoder/refact/command-r, llama-bpe, qwen2, and llama.cpp's default for
// unknown ones. Tested against llama.cpp's vectors for every vocabulary in ../shared/vocab; llama-bpe
// and qwen2 have vectors but no vocabulary file there, so their splits are tested directly.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/tokenizer/vocab.h"

namespace lowbit {

class BpeTokenizer {
 public:
  static Expected<BpeTokenizer> Create(const Vocab& vocab);

  std::vector<int32_t> Encode(std::string_view text) const;
  std::string Decode(int32_t token) const;
  // The pre-tokenizer's pieces of `text` (before byte mapping and merges), in order; their
  // concatenation is `text`.
  std::vector<std::string> PreTokenize(std::string_view text) const;

 private:
  struct Regex;
  std::vector<int32_t> EncodeRaw(std::string_view text) const;
  void EncodeWord(const std::string& mapped, std::vector<int32_t>& out) const;

  const Vocab* vocab_ = nullptr;
  std::vector<std::shared_ptr<Regex>> regexes_;
  std::vector<int32_t> user_defined_;  // added tokens, longest text first
  std::unordered_map<std::string, int32_t> ids_;
  std::unordered_map<std::string, int32_t> ranks_;  // "left right" -> rank
  std::string byte_char_[256];                      // byte -> UTF-8 of its mapped code point
  std::unordered_map<std::string, uint8_t> char_byte_;
};

}  // namespace lowbit

// BPE tokenizers as llama.cpp runs them: byte-level BPE (GGUF `tokenizer.ggml.model = "gpt2"`) and
// Gemma 4's SentencePiece-style BPE (`tokenizer.ggml.model = "gemma4"`).
//
// Encode: user-defined (added) tokens are matched in the raw text first, longest first; then
// split the text with the vocabulary's pre-tokenizer regular expressions (PCRE2 with
// Unicode properties; each expression splits the pieces the previous one left, keeping the text
// between matches), map every byte of a piece to its GPT-2 "byte-to-unicode" character, then merge
// adjacent symbols by merge rank (lowest first, leftmost on ties) and look the results up.
// Pre-tokenizers (tokenizer.ggml.pre), llama.cpp's expression lists: gpt-2/mpt/olmo, deepseek-llm,
// deepseek-coder, falcon, starcoder/refact/command-r, llama-bpe (Llama 3: a piece that is a whole
// vocabulary entry is taken as it is, "ignore merges"), qwen2, qwen35, and llama.cpp's default for
// unknown ones.
// gemma4: spaces are written as U+2581, only newline runs are split off (a run that is a vocabulary
// entry is one token), merges run on the raw UTF-8 (no byte-to-unicode mapping), and what no merge
// reaches becomes byte tokens `<0xNN>`.
// Tested against llama.cpp's vectors (tests/tokenizer/vocab_vectors_test.cc).
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

  // Added (user-defined) tokens matched in the text first, then the text between them encoded.
  std::vector<int32_t> Encode(std::string_view text) const;
  // The text as one piece of text, no added token matched (Tokenizer matches them before).
  std::vector<int32_t> EncodeText(std::string_view text) const;
  std::string Decode(int32_t token) const;
  // The pre-tokenizer's pieces of `text` (before byte mapping and merges), in order; their
  // concatenation is `text`.
  std::vector<std::string> PreTokenize(std::string_view text) const;

 private:
  struct Regex;
  void EncodeWord(const std::string& mapped, std::vector<int32_t>& out) const;

  const Vocab* vocab_ = nullptr;
  std::vector<std::shared_ptr<Regex>> regexes_;
  std::vector<int32_t> user_defined_;  // added tokens, longest text first
  std::unordered_map<std::string, int32_t> ids_;
  std::unordered_map<std::string, int32_t> ranks_;  // "left right" -> rank
  std::string byte_char_[256];                      // byte -> UTF-8 of its mapped code point
  std::unordered_map<std::string, uint8_t> char_byte_;
  bool byte_encode_ = true;     // GPT-2 byte-to-unicode mapping (false: gemma4's raw UTF-8)
  bool escape_spaces_ = false;  // spaces written as U+2581 (gemma4)
  bool ignore_merges_ = false;  // a piece found whole in the vocabulary is one token (llama-bpe)
  int32_t byte_token_[256];     // `<0xNN>` tokens, -1 where absent (gemma4)
};

}  // namespace lowbit

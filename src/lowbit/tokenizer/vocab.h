// Vocab: a tokenizer vocabulary as GGUF stores it (tokenizer.ggml.*), whatever file it came from:
// llama2.c tokenizer.bin, SentencePiece tokenizer.model, HF tokenizer.json, or a GGUF.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lowbit {

// llama.cpp's token types (the same numbers as SentencePiece's piece types).
enum class TokenType : int32_t {
  kUndefined = 0, kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6,
};

struct Vocab {
  std::string model = "llama";  // tokenizer.ggml.model: "llama" (SentencePiece-style), "gpt2" or "gemma4" (BPE)
  std::string pre;              // tokenizer.ggml.pre, empty when not known
  std::string name;             // general.name (llama.cpp keys a few token attributes on it)
  std::vector<std::string> tokens;
  std::vector<float> scores;            // empty for gpt2-style vocabularies
  std::vector<int32_t> token_types;
  std::vector<std::string> merges;      // "a b", BPE vocabularies only
  int64_t bos_id = -1, eos_id = -1, unk_id = -1, pad_id = -1;
  int add_bos = -1, add_eos = -1;       // -1: not stated
  int add_space_prefix = -1;
};

}  // namespace lowbit

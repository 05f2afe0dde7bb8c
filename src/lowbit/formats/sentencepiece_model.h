// SentencePiece tokenizer.model (a serialized sentencepiece.ModelProto protobuf), read without
// protobuf's library: only the fields a GGUF vocabulary needs.
//   ModelProto    : 1 pieces (repeated SentencePiece), 2 trainer_spec, 3 normalizer_spec
//   SentencePiece : 1 piece (string), 2 score (float), 3 type (enum; NORMAL=1 UNKNOWN=2 CONTROL=3
//                   USER_DEFINED=4 UNUSED=5 BYTE=6, default NORMAL)
//   TrainerSpec   : 3 model_type (1 unigram, 2 bpe), 40 unk_id, 41 bos_id, 42 eos_id, 43 pad_id
//   NormalizerSpec: 3 add_dummy_prefix (bool, default true)
// Unknown fields are skipped by wire type; every length is checked against the bytes left.
#pragma once

#include <span>
#include <string>

#include "lowbit/base/status.h"
#include "lowbit/tokenizer/vocab.h"

namespace lowbit {

Expected<Vocab> ParseSentencePieceModel(std::span<const uint8_t> bytes, const std::string& name);
Expected<Vocab> LoadSentencePieceModel(const std::string& path);

}  // namespace lowbit

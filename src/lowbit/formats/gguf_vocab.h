// The tokenizer vocabulary stored in a GGUF's tokenizer.ggml.* metadata, validated.
#pragma once

#include "lowbit/base/status.h"
#include "lowbit/formats/gguf_reader.h"
#include "lowbit/tokenizer/vocab.h"

namespace lowbit {

Expected<Vocab> VocabFromGguf(const GgufFile& g);

}  // namespace lowbit

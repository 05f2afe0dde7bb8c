// libFuzzer target: byte-level BPE encoding of arbitrary bytes with the deepseek-llm vocabulary
// (several pre-tokenizer expressions, user-defined tokens). Property: never a crash or a hang on any
// bytes, and for valid UTF-8 decoding the tokens gives back the input exactly. (Not for invalid
// UTF-8: byte 0xFF maps to the byte-level character "ÿ", which this vocabulary only has as an added
// token that decodes to the text "ÿ"; llama.cpp behaves the same.) Needs $LOWBIT_SHARED (or ../shared) for the
// vocabulary; without it every input is accepted untested.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "lowbit/formats/gguf_reader.h"
#include "lowbit/formats/gguf_vocab.h"
#include "lowbit/tokenizer/utf8.h"
#include "lowbit/tokenizer/bpe.h"

namespace {

struct State {
  lowbit::Vocab vocab;
  std::unique_ptr<lowbit::BpeTokenizer> tok;
};

State* Load() {
  const char* env = std::getenv("LOWBIT_SHARED");
  const std::string shared = env != nullptr ? env : "../shared";
  auto g = lowbit::GgufFile::Open(shared + "/vocab/ggml-vocab-deepseek-llm.gguf");
  if (!g.ok()) return nullptr;
  auto v = lowbit::VocabFromGguf(*g);
  if (!v.ok()) return nullptr;
  auto* s = new State{std::move(*v), nullptr};
  auto t = lowbit::BpeTokenizer::Create(s->vocab);
  if (!t.ok()) return nullptr;
  s->tok = std::make_unique<lowbit::BpeTokenizer>(std::move(*t));
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static State* state = Load();
  if (state == nullptr || size > 4096) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string back;
  for (int32_t id : state->tok->Encode(text)) back += state->tok->Decode(id);
  if (lowbit::IsValidUtf8(text) && back != text) std::abort();  // the round trip must be exact
  return 0;
}

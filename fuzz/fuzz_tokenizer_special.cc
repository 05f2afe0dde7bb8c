// libFuzzer target: special-token partition and encoding of arbitrary bytes through `Tokenizer`
// (llama.cpp's tokenizer_st_partition), with the phi-3 vocabulary: SentencePiece, control and
// user-defined tokens, whitespace stripped after special tokens. Properties: never a crash or a hang;
// every id is in the vocabulary; with specials parsed or not; and for valid UTF-8 without U+2581,
// decoding the plain encoding gives the text back after the leading space the vocabulary adds. Needs
// $LOWBIT_SHARED (or ../shared) for the vocabulary; without it every input is accepted untested.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "lowbit/formats/gguf_reader.h"
#include "lowbit/formats/gguf_vocab.h"
#include "lowbit/tokenizer/utf8.h"
#include "lowbit/tokenizer/tokenizer.h"

namespace {

struct State {
  lowbit::Vocab vocab;
  std::unique_ptr<lowbit::Tokenizer> tok;
};

State* Load() {
  const char* env = std::getenv("LOWBIT_SHARED");
  const std::string shared = env != nullptr ? env : "../shared";
  auto g = lowbit::GgufFile::Open(shared + "/vocab/ggml-vocab-phi-3.gguf");
  if (!g.ok()) return nullptr;
  auto v = lowbit::VocabFromGguf(*g);
  if (!v.ok()) return nullptr;
  auto* s = new State{std::move(*v), nullptr};
  auto t = lowbit::Tokenizer::Create(s->vocab);
  if (!t.ok()) return nullptr;
  s->tok = std::move(*t);
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static State* state = Load();
  if (state == nullptr || size > 4096) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto n = static_cast<int32_t>(state->vocab.tokens.size());
  for (int32_t id : state->tok->EncodeSpecial(text, true)) {
    if (id < 0 || id >= n) std::abort();
  }
  std::string back;
  for (int32_t id : state->tok->Encode(text)) {
    if (id < 0 || id >= n) std::abort();
    back += state->tok->Decode(id);
  }
  if (lowbit::IsValidUtf8(text) && text.find("\xe2\x96\x81") == std::string_view::npos && back != (text.empty() ? "" : " " + std::string(text))) {
    std::abort();
  }
  return 0;
}

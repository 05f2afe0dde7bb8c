// The heap a vocabulary holds while lowbit runs a model: the parsed GGUF metadata (GgufFile), the
// Vocab and the tokenizer, measured with mallinfo2 around each step. The advisor's per-entry and
// per-merge constants (src/lowbit/advise/memory.h) are a least-squares fit of these totals over
// llama.cpp's vocabulary files: lowbit_vocab_memory ../shared/vocab/ggml-vocab-*.gguf
#include <malloc.h>

#include <cstdio>

#include "lowbit/formats/gguf_reader.h"
#include "lowbit/formats/gguf_vocab.h"
#include "lowbit/tokenizer/tokenizer.h"

namespace {
long Heap() {
  const struct mallinfo2 m = mallinfo2();
  return static_cast<long>(m.uordblks + m.hblkhd);
}
}  // namespace

int main(int argc, char** argv) {
  std::printf("%-44s %8s %8s %10s %10s %10s %10s\n", "file", "tokens", "merges", "metadata", "vocab", "tokenizer", "total");
  for (int i = 1; i < argc; ++i) {
    const long h0 = Heap();
    auto g = lowbit::GgufFile::Open(argv[i]);
    if (!g.ok()) {
      std::printf("%s: %s\n", argv[i], g.status().message().c_str());
      continue;
    }
    const long h1 = Heap();
    auto v = lowbit::VocabFromGguf(*g);
    if (!v.ok()) continue;
    const long h2 = Heap();
    auto t = lowbit::Tokenizer::Create(*v);
    if (!t.ok()) continue;
    const long h3 = Heap();
    std::printf("%-44s %8zu %8zu %10ld %10ld %10ld %10ld\n", argv[i], v->tokens.size(), v->merges.size(), h1 - h0, h2 - h1, h3 - h2,
                h3 - h0);
  }
  return 0;
}

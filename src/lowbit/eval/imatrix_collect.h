// Importance matrix collection (`lowbit imatrix`): run the model over text in chunks of `ctx` tokens
// (BOS first, as for perplexity) and accumulate, for every weight matrix but the output, the mean of
// the squared input activations per column. One "call" per chunk, as llama.cpp counts them, so the
// file is llama.cpp's legacy format with the same meaning.
#pragma once

#include <functional>
#include <string>

#include "lowbit/base/status.h"
#include "lowbit/formats/imatrix.h"
#include "lowbit/model/llama.h"
#include "lowbit/tokenizer/vocab.h"

namespace lowbit {

struct ImatrixOptions {
  int64_t ctx = 0;      // 0: the model's training context
  int64_t chunks = -1;  // -1: all
  int threads = 0;
  std::string dataset;  // recorded in the file
};

Expected<Imatrix> CollectImatrix(const LlamaModel& model, const Vocab& vocab, const std::string& text,
                                 const ImatrixOptions& opts, const std::function<void(int64_t, int64_t)>& on_chunk = {});

}  // namespace lowbit

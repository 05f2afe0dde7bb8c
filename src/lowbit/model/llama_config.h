// Reading a model's hyperparameters from GGUF metadata (model/llama_config.cc holds the table of
// architectures); used by LlamaModel::Load.
#pragma once

#include "lowbit/base/status.h"
#include "lowbit/formats/gguf_reader.h"
#include "lowbit/model/llama.h"

namespace lowbit {

// The configuration of a file of any architecture in the table; an unknown architecture, a missing
// or out-of-range key: one line naming it.
Expected<LlamaConfig> ReadLlamaConfig(const GgufFile& g);

}  // namespace lowbit

// Opening any model lowbit reads for inference: a GGUF file as it is, or any other input `lowbit
// convert` reads (a Hugging Face folder, a safetensors file, a llama2.c checkpoint) assembled in
// memory as a GGUF-shaped model (GgufFile::Assemble), so `run`, `perplexity`, `bench` and the
// calibration pipeline take every input through the one LlamaModel::Load.
//
// Assembly keeps tensors as views into the input's mapping wherever the engine can use them as they
// are (F32/F16/BF16 matrices in GGUF orientation); it copies only what must change: Hugging Face Q/K
// rows un-permuted into GGUF's RoPE layout, and 1-D tensors (norms) converted to F32.
#pragma once

#include <string>

#include "lowbit/base/mapped_file.h"
#include "lowbit/base/status.h"
#include "lowbit/formats/gguf_reader.h"
#include "lowbit/model/llama.h"
#include "lowbit/pipeline/convert.h"

namespace lowbit {

// The plan's tensors as an in-memory model (the plan's keep-alive objects move into it).
Expected<GgufFile> MaterializePlan(ConversionPlan plan, const std::string& name);

// A GGUF is opened with `residency`; anything else is planned and assembled (mapped).
// `int8_threshold` >= 0 replaces a bitsandbytes 8-bit folder's llm_int8_threshold (0: plain int8);
// < 0 keeps it.
Expected<GgufFile> OpenModel(const std::string& path, Residency residency = Residency::kMapped,
                             const std::string& vocab = "", double int8_threshold = -1.0);

}  // namespace lowbit

// Writing a quantized Hugging Face folder (GPTQ / AWQ: quantize_folder.h; bitsandbytes:
// quantize_bnb.h): model.safetensors from packed tensors, the given JSON texts (config.json with its
// quantization_config, ...), the tokenizer files copied from the input folder. Written to
// OUT.tmp-PID beside OUT and renamed at the end: a failure leaves nothing.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/formats/quant_checkpoint.h"

namespace lowbit {

Status WriteFolderFiles(const std::string& input, const std::string& output, const std::vector<PackedTensor>& tensors,
                            const std::vector<std::pair<std::string, std::string>>& texts);

}  // namespace lowbit

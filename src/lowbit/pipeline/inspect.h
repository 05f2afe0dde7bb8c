// The report behind `lowbit inspect`: metadata, a tensor table (name, type, shape, bytes, bits per
// weight) and totals for a GGUF file, a safetensors file, or a Hugging Face model folder.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lowbit/base/status.h"

namespace lowbit {

struct InspectTensor {
  std::string name;
  std::string type;             // ggml type name (GGUF) or safetensors dtype
  std::vector<uint64_t> shape;  // as the format stores it (GGUF: dims[0] first; safetensors: numpy)
  uint64_t n_elements = 0;
  uint64_t n_bytes = 0;
  double bits_per_weight() const { return n_elements ? 8.0 * n_bytes / n_elements : 0.0; }
};

struct InspectMetadata {
  std::string key;
  std::string type;   // "u32", "string", "array[string]", ...
  std::string value;  // printable, arrays shortened
  nlohmann::json json;  // the value; arrays longer than 32 elements shortened to their first 32
  uint64_t count = 0;   // array length (0 for scalars)
};

struct InspectReport {
  std::string path;
  std::string format;  // "gguf v3", "safetensors", "huggingface"
  std::string shape_order;
  uint64_t file_size = 0;
  uint32_t alignment = 0;
  std::vector<InspectMetadata> metadata;
  std::vector<InspectTensor> tensors;

  uint64_t total_elements() const;
  uint64_t total_bytes() const;
  double average_bits_per_weight() const;
  nlohmann::json ToJson() const;
  std::string ToText() const;
};

Expected<InspectReport> Inspect(const std::string& path);

}  // namespace lowbit

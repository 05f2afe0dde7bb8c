// Importance matrices: per weight matrix, the mean squared activation feeding each input column
// (llama.cpp's `llama-imatrix` output), used to weight quantization error.
//
// Legacy binary `.dat` (llama.cpp): i32 n_entries, then per entry: i32 name length, name bytes,
// i32 ncall, i32 nval, f32 values[nval] (sums over calls; divided by ncall on load), then optionally
// i32 last_call, i32 dataset name length, dataset name bytes.
// GGUF form (llama.cpp's successor, also what lowbit calls its own): per matrix, F32 tensors
// `<name>.in_sum2` [n_per_row, n_mat] and `<name>.counts` [1, n_mat]; value = in_sum2 / counts.
// The GGUF form is implemented from its description; no llama.cpp-made file was available to
// check it against.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/base/status.h"

namespace lowbit {

struct ImatrixEntry {
  std::string name;        // tensor name, e.g. "blk.0.attn_q.weight"
  int32_t ncall = 0;
  std::vector<float> values;  // mean per column (already divided by ncall)
};

struct Imatrix {
  std::vector<ImatrixEntry> entries;
  std::string dataset;
  int32_t last_call = 0;
  const ImatrixEntry* Find(std::string_view name) const;
};

Expected<Imatrix> ParseImatrixDat(std::span<const uint8_t> bytes, const std::string& name);
// Detects the legacy or GGUF form.
Expected<Imatrix> LoadImatrix(const std::string& path);
// Writes the legacy `.dat` layout (values multiplied back by ncall), atomically.
Status WriteImatrixDat(const std::string& path, const Imatrix& m);

}  // namespace lowbit

// Test models for the advisor and the memory guard: sizes and shapes matter, values do not.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "lowbit/formats/gguf_writer.h"
#include "lowbit/pipeline/llama_metadata.h"

namespace lowbit::testing {

// A llama GGUF of the given shape with zero F16 weights (no vocabulary: the guard and the advisor
// never need one).
inline std::string WriteZeroLlama(const std::string& path, uint32_t embd, uint32_t heads, uint32_t layers, uint32_t ctx) {
  LlamaHparams hp;
  hp.context_length = ctx;
  hp.embedding_length = embd;
  hp.feed_forward_length = embd;
  hp.block_count = layers;
  hp.head_count = heads;
  hp.head_count_kv = heads;
  hp.rope_dimension_count = 64;
  hp.vocab_size = 256;
  GgufWriter w;
  for (const GgufKv& kv : LlamaModelKvs(hp)) w.SetKv(kv.key, kv.value);
  auto zeros = [](std::span<uint8_t> out) {
    std::fill(out.begin(), out.end(), 0);
    return OkStatus();
  };
  auto add = [&](const std::string& name, uint64_t rows, uint64_t cols) {
    std::vector<uint64_t> dims = {cols};
    if (rows > 1) dims.push_back(rows);
    EXPECT_TRUE(w.AddTensor(name, rows > 1 ? GgmlType::kF16 : GgmlType::kF32, dims, zeros).ok());
  };
  add("token_embd.weight", 256, embd);
  add("output_norm.weight", 1, embd);
  for (uint32_t l = 0; l < layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    for (const char* m : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}) add(p + m + ".weight", embd, embd);
    add(p + "attn_norm.weight", 1, embd);
    add(p + "ffn_norm.weight", 1, embd);
  }
  EXPECT_TRUE(w.Write(path).ok());
  return path;
}

}  // namespace lowbit::testing

// GPTQ whose rounding step is a ggml block quantizer (what none of the Python tools do): the
// weights become ggml blocks that llama.cpp loads, with GPTQ's error feedback across columns.
//
// At the first column of each block (32 or 256 columns) lowbit's own quantizer for the type
// (quantize.h FromFloatFor, with the importance matrix: diag H unless one is given) runs on the
// block's weights as updated so far, which fixes the block's grid (scales, mins; ggml_grid.h);
// then each column of the block is rounded on that grid (nearest level, or nearest code-book value
// for IQ4) with GPTQ's error feedback, and the block is written with the grid and those codes.
// Everything else is GptqQuantize's (gptq.h): dead columns, damping, U, the blocked column loop
// (the lazy block is a multiple of the type's block, at least block_size). Act-order is refused: a
// GGUF keeps the columns in order. Output: rows of blocks, row r at r * RowBytes(type, cols).
#pragma once

#include <cstdint>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/base/thread_pool.h"
#include "lowbit/numeric/ggml_type.h"
#include "lowbit/quant/gptq.h"

namespace lowbit {

struct GptqGgmlOptions {
  GgmlType type = GgmlType::kQ4_K;
  double damp_percent = 0.01;
  double damp_increment = 0.01;
  int64_t block_size = 128;
  bool act_order = false;            // refused with an error
  const float* imatrix = nullptr;    // [cols] importance for the block quantizer; nullptr = diag H
};

struct GptqGgmlResult {
  std::vector<uint8_t> data;  // [rows][RowBytes(type, cols)]
  GptqStats stats;
};

// With a factorization of the input's Hessian (made without act-order; options' damp and act_order
// fields are not used).
Expected<GptqGgmlResult> GptqQuantizeGgml(const float* w, int64_t rows, int64_t cols, const GptqHessianFactor& factor,
                                          const GptqGgmlOptions& options, ThreadPool* pool,
                                          const char* name = "weight");
// The same, factoring `hessian` first.
Expected<GptqGgmlResult> GptqQuantizeGgml(const float* w, int64_t rows, int64_t cols, std::vector<float> hessian,
                                          const GptqGgmlOptions& options, ThreadPool* pool,
                                          const char* name = "weight");

}  // namespace lowbit

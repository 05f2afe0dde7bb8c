// GPTQ (Frantar et al. 2022; AutoGPTQ gptq.py / GPTQModel gptq.py): quantize a linear layer's
// weights column by column, feeding each column's rounding error forward into the columns not yet
// quantized through the upper Cholesky factor U of H^-1 (H = 2/n X^T X, hessian.h), so that the
// layer's output error ||(W - Q) X||^2 is what is minimized, not ||W - Q||^2.
//
// Inputs: W [rows][cols] (row = output channel), H [cols][cols] (moved into GptqFactorHessian; its
// memory becomes U; the factor serves every linear that reads the same input). Steps, as the
// tools: dead inputs (diag H == 0) get H_ii = 1 and W[:, i] = 0; act-order sorts the columns by
// descending diag H (stable); H += damp * mean(diag H) * I, with damp raised by
// `damp_increment` while the Cholesky factorization fails (GPTQModel's damp_auto_increment) and a
// clear error once it reaches 1; U = upper Cholesky factor of H^-1; columns in blocks of
// `block_size`: within a block each column is rounded, err = (w - q) / U_ii, and the block's later
// columns get err * U[i, i+1:]; after the block every later column gets the block's errors times
// U[block, later] (one GEMM).
//
// Two rounding steps share that loop:
//   GptqQuantize: the linear integer grid (linear_quant.h), groups of any size (the last may be
//     short), sym/asym, bits 2..8, any range (min/max or AutoGPTQ's MSE grid as the tools); a group's (scale, zero) are found at its
//     first column from the weights as updated so far (or, with static_groups, from the original
//     weights before the loop). Output: codes, fp16-rounded scales, integer zeros and g_idx (the
//     codes are chosen against the rounded scale: what is stored is what was optimized).
//   GptqQuantizeGgml (gptq_ggml.h): a ggml block type's own quantizer fixes each block's grid.
//
// Linear algebra: U comes from one Cholesky factorization of the reversed H and one triangular
// inversion (U = J L^-1 J with J H J = L L^T), which equals the tools' cholesky -> cholesky_inverse ->
// cholesky(upper) up to rounding, in 2/3 of their flops. All of it and the column loop run on the
// thread pool (rows are independent given U) with the same bits for every ISA and thread count.
#pragma once

#include <cstdint>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/base/thread_pool.h"
#include "lowbit/quant/linear_quant.h"

namespace lowbit {

struct GptqOptions {
  // bits, sym, group size (kPerChannel = AutoGPTQ's group_size -1), range kMinMax or kMse (its mse
  // option); convention kGptq and fp16 scales are the tools' choice.
  LinearQuantSpec quant;
  double damp_percent = 0.01;    // of the mean of diag H
  double damp_increment = 0.01;  // added while the factorization fails; 0 = fail at once
  int64_t block_size = 128;      // lazy-update block
  bool act_order = false;        // desc_act (a property of the factorization: GptqFactorHessian)
  bool static_groups = false;
};

// H prepared for the column loop, once per input: the linears that read the same input (q/k/v,
// gate/up) share it, so the O(cols^3) work is done once for them.
struct GptqHessianFactor {
  int64_t cols = 0;
  std::vector<float> u;          // [cols][cols], U = chol(H_damped^-1, upper) in loop order
  std::vector<int32_t> perm;     // act-order: loop position -> original column (empty otherwise)
  std::vector<float> diag;       // diag H as accumulated, original order (0 = dead input)
  int64_t dead_columns = 0;
  double damp_percent = 0;       // the damp that succeeded
  int damp_raises = 0;
  double seconds = 0, cpu_seconds = 0, flops = 0;
};

struct GptqStats {
  double damp_percent = 0;      // the damp that succeeded
  int damp_raises = 0;          // how many times it was raised
  int64_t dead_columns = 0;
  double loss = 0;              // sum over the weights of (w - q)^2 / U_ii^2 / 2 (AutoGPTQ's Losses)
  double seconds_factor = 0;    // dead columns, permutation, damping, Cholesky, inversion (wall clock)
  double seconds_quantize = 0;  // the column loop and lazy updates (wall clock)
  double cpu_seconds_factor = 0;    // the same phases in CPU seconds of the process (all threads)
  double cpu_seconds_quantize = 0;
  double flops_factor = 0;      // 2 x multiply-adds of the Cholesky and the inversion
  double flops_update = 0;      // 2 x multiply-adds of the column loop and the lazy updates
};

struct GptqResult {
  LinearQuantized q;            // codes [rows][cols] in the original column order, g_idx, scales, zeros
  std::vector<int32_t> perm;    // act-order: loop position -> original column (empty otherwise)
  GptqStats stats;              // the factor's fields are the shared factorization's
};

// `name` labels error messages (the tensor or the input). `hessian` is [cols][cols], symmetric
// (HessianAccumulator::Finish); it is moved in and its memory becomes U. Uses options.damp_percent,
// damp_increment and act_order.
Expected<GptqHessianFactor> GptqFactorHessian(std::vector<float> hessian, int64_t cols, const GptqOptions& options,
                                              ThreadPool* pool, const char* name = "input");

// GPTQ of W [rows][cols] with a factorization of its input's Hessian (options.act_order must match
// the factor's).
Expected<GptqResult> GptqQuantize(const float* w, int64_t rows, int64_t cols, const GptqHessianFactor& factor,
                                  const GptqOptions& options, ThreadPool* pool, const char* name = "weight");
// The same, factoring `hessian` first (one linear per input).
Expected<GptqResult> GptqQuantize(const float* w, int64_t rows, int64_t cols, std::vector<float> hessian,
                                  const GptqOptions& options, ThreadPool* pool, const char* name = "weight");

}  // namespace lowbit

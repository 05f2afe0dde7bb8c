// The two inner loops of GPTQ's linear algebra, one row per ISA (the kernel table, chosen once):
//
//   gemm: C(r, j) op= sum_k A(r, k) * B(k, j) for an m x n block, where the sum is one fused
//         multiply-add chain per element, k ascending from 0, then one add/subtract/store into C.
//   axpy: y[i] = fma(alpha, x[i], y[i]).
//
// Every element of C is computed by the same sequence of IEEE operations whatever the ISA, the tile
// shape or the thread that computes it (vector lanes hold different output elements; no horizontal
// sums), so the SIMD rows give the reference's bits exactly and the results do not depend on the
// thread count. tests/quant/linalg_test.cc checks both.
#pragma once

#include <cstdint>

#include "lowbit/base/cpu_features.h"

namespace lowbit {

struct GemmArgs {
  int64_t m = 0, n = 0, k = 0;
  const float* a = nullptr;   // A(r, k) = a[r * a_rs + k * a_ks]
  int64_t a_rs = 0, a_ks = 1;
  const float* b = nullptr;   // B(k, j) = b[k * ldb + j]
  int64_t ldb = 0;
  float* c = nullptr;         // C(r, j) = c[r * ldc + j]
  int64_t ldc = 0;
};

enum class GemmMode { kSet, kAdd, kSub };

struct LinalgKernels {
  void (*gemm)(const GemmArgs& args, GemmMode mode);
  void (*axpy)(int64_t n, float alpha, const float* x, float* y);
  const char* name;
};

const LinalgKernels& LinalgKernelsFor(Isa isa);
const LinalgKernels& ActiveLinalgKernels();  // for ActiveIsa(), chosen once

}  // namespace lowbit

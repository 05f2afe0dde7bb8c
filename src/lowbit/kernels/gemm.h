// F32 matrix products for training: C[m][n] (+)= sum_p A(i, p) * B(p, j), each operand read as
// stored or transposed, so the three products of a linear layer need no copies:
//   forward   Y  = X W^T   A = X [T][in],   B(p, j) = W[j][p]   (b_trans)
//   backward  dX = dY W    A = dY [T][out], B = W [out][in]
//             dW += dY^T X A(i, p) = dY[p][i] (a_trans), B = X [T][in], accumulate
//
// Cache-blocked as BLIS does: for each panel of C's columns and each slice of p, B is packed once
// into slivers of NR columns, then the thread pool hands out tiles of rows, each packing its A rows
// into slivers of MR rows and running a register-blocked micro-kernel (MR x NR accumulators) on
// every pair of slivers. Each element of C is summed in the same order whatever the thread count.
// The micro-kernel is the only ISA-specific part: one table per ISA, picked once
// (ref: scalar loops; avx2: 6 x 16; avx512: 8 x 32). Results differ between ISAs only in the order
// of the float additions (tests bound it against GemmF32Ref, the plain triple loop).
#pragma once

#include <cstdint>

#include "lowbit/base/cpu_features.h"
#include "lowbit/base/thread_pool.h"

namespace lowbit {

struct GemmArgs {
  int64_t m = 0, n = 0, k = 0;
  const float* a = nullptr;  // A(i, p) = a_trans ? a[p * lda + i] : a[i * lda + p]
  int64_t lda = 0;
  bool a_trans = false;
  const float* b = nullptr;  // B(p, j) = b_trans ? b[j * ldb + p] : b[p * ldb + j]
  int64_t ldb = 0;
  bool b_trans = false;
  float* c = nullptr;        // C[i * ldc + j]
  int64_t ldc = 0;
  bool accumulate = false;   // C += A B instead of C = A B
};

// The micro-kernel: C tile (mr x nr, ldc) (+)= sum over p < kc of a[p * mr + i] * b[p * nr + j]
// on packed slivers. `accumulate` false: the tile is overwritten.
using GemmMicroFn = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate);

struct GemmKernel {
  int mr = 0, nr = 0;
  GemmMicroFn micro = nullptr;
};

const GemmKernel& GemmKernelFor(Isa isa);
const GemmKernel& ActiveGemmKernel();

// With the active kernel or a given one; pool may be null (one thread).
void GemmF32(const GemmArgs& g, ThreadPool* pool);
void GemmF32(const GemmKernel& kernel, const GemmArgs& g, ThreadPool* pool);

// The plain triple loop (float sums in p order): the truth the blocked product is tested against.
void GemmF32Ref(const GemmArgs& g);

namespace internal {
GemmKernel Avx2GemmKernel();
GemmKernel Avx512GemmKernel();
}  // namespace internal

}  // namespace lowbit

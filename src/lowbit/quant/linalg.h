// Dense linear algebra for GPTQ on the thread pool: symmetric rank-k updates on packed panels (the
// Hessian X^T X and the Cholesky trailing update), blocked Cholesky, blocked inversion of a lower
// triangular matrix, and the in-place permutations around them. Row-major float matrices with a
// leading dimension. Built on the kernel table (linalg_kernels.h): every element is a fixed sequence
// of IEEE operations, so results are identical for every ISA and every thread count.
//
// Why not a BLAS: Debian's reference LAPACK runs at ~1.5% of the FMA peak and its OpenBLAS is not
// faster than this code for GPTQ's shapes (docs/PERFORMANCE.md; bench/gptq_bench.cc --lapack), and
// neither promises the same bits on every ISA and thread count.
#pragma once

#include <cstdint>
#include <vector>

#include "lowbit/base/thread_pool.h"
#include "lowbit/quant/linalg_kernels.h"

namespace lowbit::linalg {

inline constexpr int64_t kPanel = 32;  // columns per packed panel
inline constexpr int64_t kBlock = 128; // Cholesky / inversion block size

// Runs fn(begin, end) over [0, n) on the pool, or inline when pool is null.
void ParallelFor(ThreadPool* pool, int64_t n, FunctionRef<void(size_t, size_t)> fn, size_t grain = 0);

// Panels of kPanel columns, each k rows deep: panels[(p * k + kk) * kPanel + c].
inline int64_t PanelFloats(int64_t cols, int64_t k) { return (cols + kPanel - 1) / kPanel * kPanel * k; }
// From the k x cols block x (row stride ldx), times `scale`; columns past cols are zero.
void PackColumnPanels(const float* x, int64_t k, int64_t cols, int64_t ldx, float scale, float* panels,
                      ThreadPool* pool);
// From the m x k block a (row stride lda), transposed: panel column c of panel p is row p * kPanel + c.
void PackRowPanels(const float* a, int64_t m, int64_t k, int64_t lda, float* panels, ThreadPool* pool);

enum class Triangle { kUpper, kLower };
// C op= P^T P for the n x n matrix C (row stride ldc), P = the panels (k x n), on the 32 x 32 tiles
// that touch `tri`. exact_diagonal: the diagonal tiles change only the elements of `tri` (the other
// triangle is left as it was); otherwise they are computed whole.
void SyrkPanels(const float* panels, int64_t n, int64_t k, float* c, int64_t ldc, GemmMode mode, Triangle tri,
                bool exact_diagonal, ThreadPool* pool);

// Several rank-k updates in one pass over the tiles: chunk j's panels start at panels + j * stride
// and are k deep (the last one k_last); each tile is first multiplied by `beta` (unless it is 1),
// then applies the chunks in order: the bits of a scaling pass and one SyrkPanels call per chunk
// (mode kAdd or kSub, no exact diagonal), with one hand-off to the pool.
void SyrkPanelsChunks(const float* panels, int64_t stride, int64_t n_chunks, int64_t n, int64_t k, int64_t k_last,
                      float beta, float* c, int64_t ldc, GemmMode mode, Triangle tri, ThreadPool* pool);

// In-place Cholesky a = L L^T of the n x n symmetric matrix whose lower triangle a holds. Reads and
// writes only the lower triangle and the diagonal (the strict upper triangle is left as it was).
// Returns false at the first pivot that is not positive (its column in *bad_column).
bool CholeskyLower(float* a, int64_t n, int64_t lda, ThreadPool* pool, int64_t* bad_column);

// In-place inverse of the lower triangular L in a's lower triangle; zeroes the strict upper triangle.
void InvertLowerTriangular(float* a, int64_t n, int64_t lda, ThreadPool* pool);

// a[i][j] <- a[q[i]][q[j]] for the n x n matrix (q a permutation).
void PermuteSymmetric(float* a, int64_t n, const std::vector<int32_t>& q, ThreadPool* pool);
// a[i][j] <- a[n-1-i][n-1-j].
void Rotate180(float* a, int64_t n);
// The strict lower triangle from the strict upper one (a symmetric matrix whose lower part was overwritten).
void MirrorUpperToLower(float* a, int64_t n, ThreadPool* pool);

}  // namespace lowbit::linalg

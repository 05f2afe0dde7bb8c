// The scalar reference of the linear-algebra kernels (linalg_kernels.h), and the dispatch.
#include <cmath>

#include "lowbit/quant/linalg_kernels.h"

namespace lowbit {
namespace internal {
const LinalgKernels& Avx2LinalgKernels();
const LinalgKernels& Avx512LinalgKernels();
}  // namespace internal

namespace {

void GemmRef(const GemmArgs& g, GemmMode mode) {
  for (int64_t r = 0; r < g.m; ++r) {
    for (int64_t j = 0; j < g.n; ++j) {
      float acc = 0.0f;
      for (int64_t k = 0; k < g.k; ++k) acc = std::fma(g.a[r * g.a_rs + k * g.a_ks], g.b[k * g.ldb + j], acc);
      float& c = g.c[r * g.ldc + j];
      c = mode == GemmMode::kSet ? acc : mode == GemmMode::kAdd ? c + acc : c - acc;
    }
  }
}

void AxpyRef(int64_t n, float alpha, const float* x, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::fma(alpha, x[i], y[i]);
}

}  // namespace

const LinalgKernels& LinalgKernelsFor(Isa isa) {
  static const LinalgKernels ref{GemmRef, AxpyRef, "ref"};
  if (isa >= Isa::kAvx512) return internal::Avx512LinalgKernels();
  if (isa >= Isa::kAvx2) return internal::Avx2LinalgKernels();
  return ref;
}

const LinalgKernels& ActiveLinalgKernels() {
  static const LinalgKernels& k = LinalgKernelsFor(ActiveIsa());
  return k;
}

}  // namespace lowbit

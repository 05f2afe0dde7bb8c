// GPTQ's preparation of H (gptq.h): dead inputs, act-order, damping raised while the Cholesky
// factorization fails, U = chol(H^-1, upper) as J L^-1 J with J H J = L L^T; and of W.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <numeric>

#include "lowbit/quant/gptq.h"
#include "lowbit/quant/gptq_internal.h"
#include "lowbit/quant/linalg.h"

namespace lowbit {
namespace gptq_internal {
namespace {

double WallNow() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
double CpuNow() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

}  // namespace

PhaseTimer::PhaseTimer() : wall0(WallNow()), cpu0(CpuNow()) {}
void PhaseTimer::AddTo(double* wall, double* cpu) const {
  *wall += WallNow() - wall0;
  *cpu += CpuNow() - cpu0;
}

Expected<std::vector<float>> PrepareWeights(const float* w, int64_t rows, int64_t cols, const GptqHessianFactor& f,
                                            const char* name) {
  if (rows <= 0 || cols <= 0) return Errorf("{}: GPTQ needs a non-empty weight (got {} x {})", name, rows, cols);
  if (f.cols != cols || static_cast<int64_t>(f.u.size()) != cols * cols) {
    return Errorf("{}: the weight has {} input columns but the Hessian factor was made for {}", name, cols, f.cols);
  }
  for (int64_t i = 0; i < rows * cols; ++i) {
    if (!std::isfinite(w[i])) return Errorf("{}: weight [{}, {}] is not finite ({})", name, i / cols, i % cols, w[i]);
  }
  std::vector<float> out;
  if (f.perm.empty() && f.dead_columns == 0) {
    out.assign(w, w + rows * cols);
    return out;
  }
  out.reserve(Z(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    const float* wr = w + r * cols;
    for (int64_t i = 0; i < cols; ++i) {
      const int64_t c = f.perm.empty() ? i : f.perm[Z(i)];
      out.push_back(f.diag[Z(c)] == 0 ? 0.0f : wr[c]);
    }
  }
  return out;
}

void FactorStats(const GptqHessianFactor& f, GptqStats* stats) {
  stats->damp_percent = f.damp_percent;
  stats->damp_raises = f.damp_raises;
  stats->dead_columns = f.dead_columns;
  stats->seconds_factor = f.seconds;
  stats->cpu_seconds_factor = f.cpu_seconds;
  stats->flops_factor = f.flops;
}

}  // namespace gptq_internal

Expected<GptqHessianFactor> GptqFactorHessian(std::vector<float> h, int64_t cols, const GptqOptions& options,
                                              ThreadPool* pool, const char* name) {
  using gptq_internal::Z;
  const gptq_internal::PhaseTimer timer;
  if (cols <= 0) return Errorf("{}: a Hessian needs at least one column (got {})", name, cols);
  if (static_cast<int64_t>(h.size()) != cols * cols) {
    return Errorf("{}: the Hessian has {} values, expected {} x {}", name, h.size(), cols, cols);
  }
  const double damp0 = options.damp_percent;
  if (!(damp0 >= 0 && damp0 < 1)) return Errorf("{}: damp must be in [0, 1) (got {})", name, damp0);
  for (int64_t i = 0; i < cols * cols; ++i) {
    if (!std::isfinite(h[Z(i)])) {
      return Errorf("{}: the Hessian is not finite at [{}, {}]: the calibration activations reaching this layer "
                    "contain inf or NaN",
                    name, i / cols, i % cols);
    }
  }
  GptqHessianFactor f;
  f.cols = cols;
  f.diag.resize(Z(cols));
  for (int64_t i = 0; i < cols; ++i) {
    float& hii = h[Z(i * cols + i)];
    f.diag[Z(i)] = hii;
    if (hii == 0) {  // dead input: H_ii = 1 (its weights are zeroed)
      hii = 1;
      ++f.dead_columns;
    }
  }
  if (options.act_order) {  // columns by descending diag H (dead ones count as 1), ties in order
    f.perm.resize(Z(cols));
    std::iota(f.perm.begin(), f.perm.end(), 0);
    std::stable_sort(f.perm.begin(), f.perm.end(),
                     [&](int32_t a, int32_t b) { return h[Z(a * cols + a)] > h[Z(b * cols + b)]; });
  }
  // Work on J H_perm J (reversed loop order): its lower Cholesky factor L gives U = J L^-1 J.
  std::vector<int32_t> q(Z(cols));
  for (int64_t i = 0; i < cols; ++i) q[Z(i)] = f.perm.empty() ? static_cast<int32_t>(cols - 1 - i) : f.perm[Z(cols - 1 - i)];
  float* a = h.data();
  linalg::PermuteSymmetric(a, cols, q, pool);
  std::vector<float> diag(Z(cols));
  double mean = 0;
  for (int64_t i = 0; i < cols; ++i) {
    diag[Z(i)] = a[i * cols + i];
    mean += diag[Z(i)];
  }
  mean /= static_cast<double>(cols);
  double damp = damp0;
  while (true) {
    const float add = static_cast<float>(damp * mean);
    for (int64_t i = 0; i < cols; ++i) a[i * cols + i] = diag[Z(i)] + add;
    int64_t bad = 0;
    if (linalg::CholeskyLower(a, cols, cols, pool, &bad)) break;
    const double next = damp + options.damp_increment;
    if (options.damp_increment <= 0 || next >= 1) {
      const int64_t col = f.perm.empty() ? cols - 1 - bad : f.perm[Z(cols - 1 - bad)];
      return Errorf("{}: the Hessian stays singular (Cholesky failed at input column {} with damp {:.4g}); "
                    "use more or longer calibration samples, or a larger --damp",
                    name, col, damp);
    }
    damp = next;
    ++f.damp_raises;
    linalg::MirrorUpperToLower(a, cols, pool);  // the factorization left the upper triangle as it was
  }
  linalg::InvertLowerTriangular(a, cols, cols, pool);
  linalg::Rotate180(a, cols);
  f.u = std::move(h);
  f.damp_percent = damp;
  const double n = static_cast<double>(cols);
  f.flops = (1 + f.damp_raises) * n * n * n / 3 + n * n * n / 3;
  timer.AddTo(&f.seconds, &f.cpu_seconds);
  return f;
}

}  // namespace lowbit

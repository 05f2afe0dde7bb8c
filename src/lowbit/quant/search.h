// Search primitives behind lowbit's K-quant / IQ4 / ternary quantizers.
//
// Goal: minimize the error the user measures, sum_i w_i (x_i - y_i)^2, with w = 1 (plain RMSE) or
// the importance matrix's per-column weights. ggml instead minimizes a heuristic weighting (|x| or
// x^2 based) and quantizes the sub-block scales with one rounding; lowbit (1) fits each sub-block
// by a candidate-scale search with least-squares refits, then (2) quantizes the sub-block scales
// jointly with the fp16 super-block scale(s) by coordinate descent: each sub-block tries the
// integer scales around its ideal one, then the super-block scale(s) are refit by least squares
// over the whole block, repeated while the error drops. Codes are always recomputed from the
// values that are actually stored (fp16-rounded scales), so the error reported is the real one.
#pragma once

#include <cstdint>

#include "lowbit/base/cpu_features.h"

namespace lowbit::search {

// How hard a search tries (per type in kquants.cc / iq4_ternary.cc; docs/QUALITY.md has the sweep).
struct Effort {
  int fit_lanes = 16;  // candidate scales per sub-block fit: 8, 16, 24 or 32
  int fit_iters = 2;   // least-squares refits per candidate
  int scan = 24;       // surrogate super-scale candidates per scan (multiple of 8)
  int starts = 2;      // best surrogate candidates refined exactly (1..3)
  int descent = 4;     // exact evaluate / least-squares refit rounds per start (every integer
                       // sub-scale choice within 1 of the ideal is evaluated exactly, in lanes)
  // Symmetric fits: the largest |x| is mapped from `clip` (fraction of the level span past the end of
  // the range) to `short_of` (fraction short of it).
  float clip = 0.40f, short_of = 0.25f;
};

// A set of reconstruction levels: uniform integers [qmin, qmin + n) or a sorted code book.
struct Levels {
  int n = 0;
  int qmin = 0;                 // uniform: level k is qmin + k
  const float* book = nullptr;  // code book (sorted ascending), or nullptr for uniform
  float Value(int k) const { return book ? book[k] : static_cast<float>(qmin + k); }
  float Min() const { return Value(0); }
  float Max() const { return Value(n - 1); }
};

// Two-level symmetric: x[sub*len + i] ~= d * s[sub] * level[idx], s integer in [smin, smax].
struct SymmetricSpec {
  int nsub, len;
  Levels levels;
  int smin, smax;
  Effort effort;
};
// Returns the weighted squared error; writes d (fp16-representable), s[nsub], idx[nsub*len].
double QuantizeSymmetric(const SymmetricSpec& spec, const float* x, const float* w, float* d, int* s,
                         uint8_t* idx);

// Two-level affine: x ~= d * ls[sub] * L - dmin * lm[sub], L in [0, nmax], ls/lm in [0, lmax].
struct AffineSpec {
  int nsub, len, nmax, lmax;
  Effort effort;
};
double QuantizeAffine(const AffineSpec& spec, const float* x, const float* w, float* d, float* dmin,
                      int* ls, int* lm, uint8_t* L);

// One-level code book fit: x[0..n) ~= d * level[idx] (IQ4_NL). Returns the error.
double QuantizeScaled(const Levels& levels, const float* x, const float* w, int n, const Effort& effort, float* d,
                      uint8_t* idx);

// The searches above run on 8-lane float vectors, built for the baseline ISA and for AVX2; both give
// the same bits. The plain functions use the table for ActiveIsa(); tests compare the tables.
struct SearchTable {
  double (*symmetric)(const SymmetricSpec&, const float*, const float*, float*, int*, uint8_t*);
  double (*affine)(const AffineSpec&, const float*, const float*, float*, float*, int*, int*, uint8_t*);
  double (*scaled)(const Levels&, const float*, const float*, int, const Effort&, float*, uint8_t*);
};
const SearchTable& SearchTableFor(Isa isa);

// Ternary: x ~= d * t, t in {-1, 0, 1} (TQ1_0 / TQ2_0), exact optimum for fixed weights.
double QuantizeTernary(const float* x, const float* w, int n, float* d, int8_t* t);

}  // namespace lowbit::search

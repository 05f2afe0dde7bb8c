// Row dot products dot(W[r, :], x) on weights in their stored type, one table per ISA, chosen once.
//
// Activations are converted once per product into the weight type's partner, the "activation
// type" (ActTypeFor): Q8_0 for Q4_0, Q5_0, Q8_0 and IQ4_NL; Q8_1 for Q4_1 and Q5_1; Q8_K for
// Q2_K..Q6_K and IQ4_XS; I8 (a per-token int8 row with the outliers in float, kernels/dot_int8.h)
// for the LLM.int8 types I8R32 / I8R256; I16 (int16 per block of 64, kernels/dot_bnb.h) for the
// paired bitsandbytes types NF4G64x2 / FP4G64x2; F32 for everything else (F32/F16/BF16 and the TQ and IQ lattice types,
// which the reference runs by dequantizing a row). This is what ggml does on CPU, so a quantized
// model scores the perplexity llama.cpp reports for it.
//
// The reference table computes the integer block sums exactly and combines them in float; the
// AVX2 table computes the same integer sums (maddubs/madd) and differs only in the order of the
// float additions and FMA rounding. Tests bound the difference per type (tests/kernels/dot_test.cc).
//
// The grouped-integer types (W4G32 .. W8G128, numeric/grouped.h) take Q8_0 activations too. Their
// float order, which every table keeps (so all their kernels are bit-equal to the reference): per
// group g of G columns, gs = 0, then for each 32-column sub-block i of it in order
// gs += float(isum_i - z * asum_i) * d_a[i] (isum_i the exact integer dot of the codes with the
// activation codes, asum_i the sum of the activation codes, d_a[i] the block's fp16 scale as float;
// the integer difference is exact in int32), then acc += fp16(d) * gs, acc starting at 0 (no FMA).
#pragma once

#include <cstdint>
#include <optional>

#include "lowbit/base/cpu_features.h"
#include "lowbit/numeric/ggml_type.h"

namespace lowbit {

// dot(w_row, act) over n elements; `act` is the row of activations in ActTypeFor(weight type).
using VecDotFn = float (*)(const uint8_t* w_row, const uint8_t* act, int64_t n);

// Four dot products of one weight row with four activation rows (act + t * act_stride, t < 4),
// decoding the weights once: the prefill (matrix-matrix) kernel. out[t] equals, bit for bit, what
// the table's VecDotFn returns for row t.
using VecDot4Fn = void (*)(const uint8_t* w_row, const uint8_t* act, uint64_t act_stride, int64_t n, float* out);

inline constexpr int kMaxTypeId = static_cast<int>(kTypeIdLimit);  // ggml's ids and lowbit's internal ones

// Prefill GEMM on 8 weight rows (w, row_bytes apart) and ntok activation rows (act_stride apart):
// y[t * y_stride + r] for r < 8. Each result equals the reference VecDotFn's bit for bit. Where the
// table has a Gemm8LayoutFn for the type, `act` is what it made of the activation rows.
using Gemm8Fn = void (*)(const uint8_t* w, uint64_t row_bytes, int64_t n, const uint8_t* act, uint64_t act_stride,
                         int64_t ntok, float* y, int64_t y_stride);

// The Gemm8Fn contract on 16 weight rows (y[t * y_stride + r] for r < 16), where a kernel reads
// each activation once for both groups of 8.
using Gemm16Fn = Gemm8Fn;

// Rearranges ntok activation rows (act_stride apart) into the layout the table's Gemm8Fn reads, in
// the same number of bytes (ntok * act_stride at out, rows in the same places): done once per
// product rather than once per 8 weight rows. The VNNI GEMM of the 32-element types interleaves
// tokens in pairs (dot_x86.inc, Gemm8Layout). Called on token ranges that start at an even token.
using Gemm8LayoutFn = void (*)(const uint8_t* act, uint64_t act_stride, int64_t n, int64_t ntok, uint8_t* out);

// Decode on 8 weight rows, reading them in place (no repacking): the Gemm8Fn contract, for any
// ntok, but the weights are decoded again per token, so it is the kernel for one token.
using Rows8Fn = Gemm8Fn;

// Converts n floats into activation blocks (Q8_0, Q8_1 or Q8_K) at dst, the reference quantizers'
// bytes; for Q8_0 also the integer sum of each block's codes into sums[] when sums is not null.
using ActQuantFn = void (*)(const float* x, void* dst, int64_t n, int32_t* sums);

// Attention of n_q query heads that share one K/V head (grouped-query attention; n_q = 1 for
// multi-head) over positions [0, n_pos) of a K/V cache whose rows (F32 or F16, `stride` bytes apart)
// hold this head's hd values. For each query g (q + g * hd): att[t] = scale * (q . k_t), softmax over
// t (the maximum subtracted, softmax::Exp, the sum in Dot's 8 partial sums: kernels/softmax.h),
// out + g * hd = sum over t of (att[t] / sum) * v_t. `att` is scratch of n_q * n_pos floats. Every
// table's result equals the reference's bit for bit: the dot keeps the reference's 8 partial sums and
// their combination (Dot, kernels/matvec.h: each partial sum a fused multiply-add), the softmax its
// operations, and each output element of the weighted sum over t in order, with no FMA.
using AttendFn = void (*)(const float* q, int64_t n_q, const uint8_t* k, const uint8_t* v, uint64_t stride, int64_t n_pos,
                          int64_t hd, float scale, float* att, float* out);

// The SwiGLU FFN's gating: out[i] = softmax::Silu(gate[i]) * up[i] for i < n (out may be gate).
// Every table's result equals the reference's bit for bit.
using SwiGluFn = void (*)(const float* gate, const float* up, float* out, int64_t n);
// GeGLU (gemma): out[i] = softmax::GeluTanh(gate[i]) * up[i], the same signature as SwiGluFn.
using GeGluFn = SwiGluFn;
// AttendFn with soft-capped scores (gemma2): att[t] = cap * tanh(scale * (q . k_t) / cap) before the
// softmax. Reference only (every table holds the reference's function): one model family uses it.
using AttendCappedFn = void (*)(const float* q, int64_t n_q, const uint8_t* k, const uint8_t* v, uint64_t stride, int64_t n_pos,
                                int64_t hd, float scale, float cap, float* att, float* out);

inline constexpr int64_t kGemmFromDefault = 8;

struct DotKernels {
  VecDotFn dot[kMaxTypeId] = {};
  VecDot4Fn dot4[kMaxTypeId] = {};  // nullptr: MatMul calls dot four times
  Gemm8Fn gemm8[kMaxTypeId] = {};   // nullptr: MatMul uses dot4 / dot
  Gemm16Fn gemm16[kMaxTypeId] = {};  // nullptr: MatMul uses gemm8
  Gemm8LayoutFn gemm8_layout[kMaxTypeId] = {};  // nullptr: gemm8 and gemm16 read the activation rows as they are
  Rows8Fn rows8[kMaxTypeId] = {};   // nullptr: MatMul decodes with dot
  // The fewest tokens a product takes gemm8 / gemm16 at (0: kGemmFromDefault); fewer run on rows8
  // (any token count: it decodes each block once per 4 tokens) or, without it, on dot4 / dot.
  uint8_t gemm_from[kMaxTypeId] = {};
  ActQuantFn quant_q8_0 = nullptr, quant_q8_1 = nullptr, quant_q8_k = nullptr;
  // The paired bitsandbytes types' int16 activation row (kernels/dot_bnb.h), the reference's bytes
  // (the reference table's: QuantizeBnbAct16; sums unused).
  ActQuantFn quant_bnb16 = nullptr;
  AttendFn attend[2] = {};  // F32 cache, F16 cache
  SwiGluFn swiglu = nullptr;
  GeGluFn geglu = nullptr;
  AttendCappedFn attend_capped[2] = {};  // F32 cache, F16 cache
  VecDotFn For(GgmlType t) const { return dot[static_cast<uint32_t>(t)]; }
  VecDot4Fn For4(GgmlType t) const { return dot4[static_cast<uint32_t>(t)]; }
  Gemm8Fn ForGemm8(GgmlType t) const { return gemm8[static_cast<uint32_t>(t)]; }
  Gemm16Fn ForGemm16(GgmlType t) const { return gemm16[static_cast<uint32_t>(t)]; }
  Gemm8LayoutFn ForGemm8Layout(GgmlType t) const { return gemm8_layout[static_cast<uint32_t>(t)]; }
  Rows8Fn ForRows8(GgmlType t) const { return rows8[static_cast<uint32_t>(t)]; }
  int64_t GemmFrom(GgmlType t) const {
    const uint8_t g = gemm_from[static_cast<uint32_t>(t)];
    return g != 0 ? g : kGemmFromDefault;
  }
  // Whether a product of `batch` tokens runs on the GEMM. A batch-invariant one (continuous batching)
  // only where the table has rows8 too: the two are bit-equal to the reference, so a sequence's
  // results do not depend on which of them its step took; the dots of a type without rows8 are not.
  bool TakesGemm(GgmlType t, int64_t batch, bool batch_invariant) const {
    return batch >= GemmFrom(t) && ForGemm8(t) != nullptr && (!batch_invariant || ForRows8(t) != nullptr);
  }
  AttendFn ForAttend(bool f16_cache) const { return attend[f16_cache ? 1 : 0]; }
};

const DotKernels& DotKernelsFor(Isa isa);
const DotKernels& ActiveDotKernels();  // for ActiveIsa(), picked on first use

// The interleaved type (numeric/interleave.h) that weights of file type `t` take in memory with table
// `k`: where the table has its 8-row kernel (the AVX-512 VNNI table has one for every type
// InterleavedOf names), else nullopt.
std::optional<GgmlType> InterleavedFor(const DotKernels& k, GgmlType t);
// The same for a matrix of `rows` rows of `cols` elements, `row_stride` bytes apart: only whole
// groups of 8 packed rows of whole column groups interleave (InterleavesCols; what a model in memory
// and advise's probes hold).
std::optional<GgmlType> InterleavedFor(const DotKernels& k, GgmlType t, int64_t rows, int64_t cols, uint64_t row_stride);

// The activation type for weights of type `w` (same for every ISA).
GgmlType ActTypeFor(GgmlType w);
// An activation row: the ggml blocks of ActTypeFor(w) (byte-identical to ggml's), padded to 16
// bytes; for Q8_0 and Q8_1 then the block scales as floats (d[nb], then d * sum(q)[nb] and the
// integer sum(q)[nb] for Q8_0; ggml's s[nb] for Q8_1), so kernels
// need not convert fp16 per use; the row is padded to 64 bytes.
uint64_t ActRowBytes(GgmlType w, int64_t n);
// Offset of the float scales in an activation row.
uint64_t ActScalesOffset(GgmlType w, int64_t n);
// Converts n floats into an activation row for weights of type w (a copy for F32), with the given
// table's quantizers (every table gives the same bytes) or the active one's.
// For the LLM.int8 types (I8R32, I8R256) the row is kernels/dot_int8.h's, with the outlier
// threshold `outlier_threshold` (0: none); other types ignore it.
void QuantizeActivations(const DotKernels& k, GgmlType w, const float* x, uint8_t* out, int64_t n, float outlier_threshold = 0.0f);
void QuantizeActivations(GgmlType w, const float* x, uint8_t* out, int64_t n, float outlier_threshold = 0.0f);
// The same through an input map (MatMulArgs::x_map, kernels/matvec.h): element i is x[x_map[i]], or
// 0 where x_map[i] < 0, gathered while converting (a chunk of blocks at a time; no allocation). The
// bytes equal those of the plain call on the gathered row; x_map == nullptr is the plain call.
void QuantizeActivations(const DotKernels& k, GgmlType w, const float* x, const int32_t* x_map, uint8_t* out, int64_t n,
                         float outlier_threshold = 0.0f);
void QuantizeActivations(GgmlType w, const float* x, const int32_t* x_map, uint8_t* out, int64_t n, float outlier_threshold = 0.0f);

namespace internal {
void FillRefDotKernels(DotKernels* k);
void FillAvx2DotKernels(DotKernels* k);    // overrides the entries it has
void FillAvx512DotKernels(DotKernels* k);  // AVX2 kernels with VNNI
// The grouped-integer types' entries (kernels/dot_grouped.cc, dot_grouped_x86.inc).
void FillRefGroupedKernels(DotKernels* k);
void FillAvx2GroupedKernels(DotKernels* k);
void FillAvx512GroupedKernels(DotKernels* k);
// bitsandbytes' 4-bit types' entries (kernels/dot_bnb.cc, dot_bnb_x86.inc).
void FillRefBnbKernels(DotKernels* k);
void FillAvx2BnbKernels(DotKernels* k);
void FillAvx512BnbKernels(DotKernels* k);
// LLM.int8's entries (kernels/dot_int8.cc, dot_int8_x86.inc).
void FillRefInt8Kernels(DotKernels* k);
void FillAvx2Int8Kernels(DotKernels* k);
void FillAvx512Int8Kernels(DotKernels* k);
}  // namespace internal

}  // namespace lowbit

// bitsandbytes' quantizers on plain arrays: blockwise 4-bit (NF4 / FP4) over a flattened tensor,
// double quantization of the block absmax values, and LLM.int8's row-wise absmax int8.
//
// Each writes the bytes bitsandbytes' CUDA kernels write for the same float32 input (inputs stored
// as fp16 / bf16 convert to float exactly, so the same holds for them): per block absmax = max |x|,
// x is scaled by the float reciprocal 1 / absmax (a multiply, as kQuantizeBlockwise does) and coded by
// numeric/bnb.h's decision (Bnb4Encode, BnbEncode8). One deliberate approximation: double
// quantization's offset is mean(absmax) summed in double and rounded once to float; torch's float32
// mean may differ from that in the last bit on some inputs and devices (everything after the offset
// is the same function of it).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "lowbit/numeric/bnb.h"

namespace lowbit {

inline constexpr int64_t kBnbNestedBlock = 256;  // double quantization's block (bitsandbytes fixes it)

inline bool IsValidBnbBlockSize(int64_t b) { return b >= 32 && b <= 4096 && (b & (b - 1)) == 0; }
inline int64_t BnbBlockCount(int64_t n, int64_t blocksize) { return (n + blocksize - 1) / blocksize; }

// n values -> (n + 1) / 2 packed bytes (first element in the high nibble) and BnbBlockCount absmax.
void QuantizeBnb4(Bnb4Type t, const float* x, int64_t n, int64_t blocksize, uint8_t* packed, float* absmax);
// Beyond bitsandbytes: the same layout (a valid bitsandbytes tensor: the stored "absmax" is the block's
// scale), but each block's scale d searched to minimize sum_i w_i (x_i - level[q_i] d)^2, codes by the
// same decision on x * (1 / d) (values beyond +-d take the end levels): 17 candidates from absmax down
// to 0.8 absmax, then the least-squares scale of the best candidate's codes, kept when better.
// w_i = col_weights[i % cols] (an importance matrix's column means), or 1 when col_weights is null.
void QuantizeBnb4Searched(Bnb4Type t, const float* x, int64_t n, int64_t blocksize, const float* col_weights, int64_t cols,
                          uint8_t* packed, float* absmax);
// The inverse: level[q] * absmax[block] (n values).
void DequantizeBnb4(Bnb4Type t, const uint8_t* packed, std::span<const float> absmax, int64_t n, int64_t blocksize,
                    float* out);

// Double quantization (compress_statistics=True): offset = mean(absmax); absmax - offset quantized
// with the signed dynamic map in blocks of 256.
struct BnbNestedAbsmax {
  float offset = 0.0f;
  std::vector<uint8_t> q;              // one code per 4-bit block ("weight.absmax", uint8)
  std::vector<float> nested_absmax;    // one per 256 codes ("weight.nested_absmax")
};
BnbNestedAbsmax DoubleQuantizeAbsmax(std::span<const float> absmax);
// absmax[i] = dynamic[q[i]] * nested_absmax[i / 256] + offset, in float, as bitsandbytes decodes it.
void DecodeNestedAbsmax(std::span<const uint8_t> q, std::span<const float> nested_absmax, float offset,
                        std::span<float> absmax);

// LLM.int8 weights (Int8Params; int8_vectorwise_quant of bitsandbytes' default backend): per row
// SCB = max |w|, q = round(w * (127 / SCB)) in float (round half to even, as torch.round), a zero
// row all zeros. Returns SCB per row.
std::vector<float> QuantizeInt8Rows(const float* w, int64_t rows, int64_t cols, int8_t* q);
// int8_vectorwise_dequant: W = (q * SCB) * float(1 / 127) (7.874015718698502e-3), in that order.
void DequantizeInt8Rows(const int8_t* q, std::span<const float> scb, int64_t rows, int64_t cols, float* out);

}  // namespace lowbit

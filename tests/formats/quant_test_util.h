// Shared helpers of the GPTQ / AWQ checkpoint tests: random layers with exactly representable
// scales, and a write -> read round trip through a real safetensors file.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>

#include "lowbit/formats/int_quant.h"
#include "lowbit/formats/quant_checkpoint.h"
#include "lowbit/numeric/half.h"
#include "test_data.h"

namespace lowbit::testing {

struct LinearSpec {
  int bits = 4;
  int64_t rows = 32, cols = 64, group_size = 32;
  bool act_order = false;
  bool sym = false;
  bool bias = false;
  ScaleDtype scale_dtype = ScaleDtype::kF16;
};

inline float RoundTo(float v, ScaleDtype d) {
  if (d == ScaleDtype::kF16) return Fp16ToFp32(Fp32ToFp16(v));
  if (d == ScaleDtype::kBF16) return Bf16ToFp32(Fp32ToBf16(v));
  return v;
}

inline IntQuantLinear RandomLinear(std::mt19937& rng, const LinearSpec& s) {
  IntQuantLinear q;
  q.bits = s.bits;
  q.rows = s.rows;
  q.cols = s.cols;
  q.group_size = s.group_size;
  q.scale_dtype = s.scale_dtype;
  const int maxq = (1 << s.bits) - 1;
  std::uniform_int_distribution<int> code(0, maxq);
  std::uniform_real_distribution<float> scale(1e-3f, 0.2f), bias(-2.f, 2.f);
  q.codes.resize(s.rows * s.cols);
  for (auto& c : q.codes) c = static_cast<uint8_t>(code(rng));
  const int64_t ng = q.n_groups();
  q.scales.resize(ng * s.rows);
  q.zeros.resize(ng * s.rows);
  for (auto& v : q.scales) v = RoundTo(scale(rng), s.scale_dtype);
  for (auto& z : q.zeros) z = s.sym ? 1 << (s.bits - 1) : code(rng);
  q.g_idx = MonotoneGIdx(s.cols, s.group_size);
  if (s.act_order) std::shuffle(q.g_idx.begin(), q.g_idx.end(), rng);
  if (s.bias) {
    q.bias.resize(s.rows);
    for (auto& b : q.bias) b = RoundTo(bias(rng), s.scale_dtype == ScaleDtype::kF32 ? ScaleDtype::kF32 : s.scale_dtype);
  }
  return q;
}

inline bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

inline void ExpectSameLinear(const IntQuantLinear& a, const IntQuantLinear& b) {
  EXPECT_EQ(a.bits, b.bits);
  EXPECT_EQ(a.rows, b.rows);
  EXPECT_EQ(a.cols, b.cols);
  EXPECT_EQ(a.group_size, b.group_size);
  EXPECT_EQ(a.scale_dtype, b.scale_dtype);
  EXPECT_EQ(a.codes, b.codes);
  EXPECT_EQ(a.zeros, b.zeros);
  EXPECT_EQ(a.g_idx, b.g_idx);
  EXPECT_TRUE(SameBits(a.scales, b.scales));
  EXPECT_TRUE(SameBits(a.bias, b.bias));
}

// Writes `q` as module "m" with `cfg`, reads it back from the file.
inline Expected<IntQuantLinear> RoundTrip(const IntQuantLinear& q, const QuantConfig& cfg, const TempDir& dir,
                                          QuantReadNotes* notes = nullptr) {
  SafetensorsWriter w;
  LOWBIT_RETURN_IF_ERROR(AddQuantizedLinear(w, "m", q, cfg));
  const std::string path = dir.Path("rt.safetensors");
  LOWBIT_RETURN_IF_ERROR(w.Write(path));
  LOWBIT_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open(path));
  return ReadQuantizedLinear(f, "m", cfg, q.rows, q.cols, notes);
}

}  // namespace lowbit::testing

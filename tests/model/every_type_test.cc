// Every tensor type of the formats issue runs through the forward pass: a small synthetic model
// (synth "tiny": dim 256, 2 layers, 4 heads / 2 KV heads, FFN 512) with all 2-D weights in type T
// gives logits close to the same model with those weights dequantized to F32. The only difference
// allowed is the activation rounding of the integer dot products (Q8_0/Q8_1/Q8_K), or float
// summation order for types that keep F32 activations.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <vector>

#include "lowbit/formats/gguf_writer.h"
#include "lowbit/kernels/dot.h"
#include "lowbit/model/llama.h"
#include "lowbit/numeric/blocks.h"
#include "lowbit/numeric/dequant.h"
#include "lowbit/numeric/half.h"
#include "lowbit/quant/quantize.h"
#include "model/synth_tiny.h"

namespace lowbit {
namespace {

// Bytes of a tensor in type t: quantized from `x` when lowbit has a quantizer for t; otherwise
// (the IQ lattice types) random codes with the super-block scale set so the weights have RMS 0.02.
std::vector<uint8_t> Encode(GgmlType t, const float* x, int64_t rows, int64_t cols, std::mt19937& rng) {
  const uint64_t row_bytes = *RowBytes(t, static_cast<uint64_t>(cols));
  std::vector<uint8_t> out(row_bytes * static_cast<uint64_t>(rows));
  if (FromFloatFor(t) != nullptr) {
    for (int64_t r = 0; r < rows; ++r) FromFloatFor(t)(x + r * cols, out.data() + r * row_bytes, cols, nullptr);
    return out;
  }
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  const size_t bs = TypeInfo(t).block_bytes;
  auto set_scale = [&](float d) {
    const uint16_t h = Fp32ToFp16(d);
    for (size_t off = 0; off < out.size(); off += bs) {
      if (t == GgmlType::kIQ1_M) {  // the fp16 scale is the top nibbles of the four u16 scale words
        auto* b = reinterpret_cast<BlockIQ1_M*>(out.data() + off);
        for (int k = 0; k < 4; ++k) {
          uint16_t w;
          std::memcpy(&w, b->scales + 2 * k, 2);
          w = static_cast<uint16_t>((w & 0x0FFF) | (((h >> (4 * k)) & 0xF) << 12));
          std::memcpy(b->scales + 2 * k, &w, 2);
        }
      } else {
        std::memcpy(out.data() + off, &h, 2);  // d is the first field of the other IQ blocks
      }
    }
  };
  set_scale(1.0f);
  std::vector<float> deq(static_cast<size_t>(rows * cols));
  ToFloatFor(t)(out.data(), deq.data(), rows * cols);
  double ss = 0;
  for (float v : deq) ss += static_cast<double>(v) * v;
  set_scale(static_cast<float>(0.02 / std::sqrt(ss / static_cast<double>(deq.size()))));
  return out;
}

class EveryType : public ::testing::TestWithParam<GgmlType> {};

TEST_P(EveryType, ForwardMatchesDequantizedF32Model) {
  const GgmlType t = GetParam();
  testing::TempDir dir;
  auto src = testing::SynthTiny(dir);
  ASSERT_TRUE(src.ok());

  // Every 2-D weight in type t, and the same weights dequantized.
  std::mt19937 rng(7);
  std::map<std::string, std::vector<uint8_t>> typed, deq;
  GgufWriter wt, wd;
  for (const GgufKv& kv : src->kvs()) {
    wt.SetKv(kv.key, kv.value);
    wd.SetKv(kv.key, kv.value);
  }
  for (const GgufTensorInfo& ti : src->tensors()) {
    const std::span<const uint64_t> dims(ti.dims.data(), ti.n_dims);
    if (ti.n_dims == 2) {
      const auto rows = static_cast<int64_t>(ti.dims[1]), cols = static_cast<int64_t>(ti.dims[0]);
      typed[ti.name] = Encode(t, reinterpret_cast<const float*>(ti.data), rows, cols, rng);
      std::vector<uint8_t>& d = deq[ti.name];
      d.resize(static_cast<size_t>(rows * cols) * 4);
      ToFloatFor(t)(typed[ti.name].data(), reinterpret_cast<float*>(d.data()), rows * cols);
      const std::vector<uint8_t>* tb = &typed[ti.name];
      const std::vector<uint8_t>* db = &d;
      ASSERT_TRUE(wt.AddTensor(ti.name, t, dims, [tb](std::span<uint8_t> o) { std::memcpy(o.data(), tb->data(), o.size()); return OkStatus(); }).ok());
      ASSERT_TRUE(wd.AddTensor(ti.name, GgmlType::kF32, dims, [db](std::span<uint8_t> o) { std::memcpy(o.data(), db->data(), o.size()); return OkStatus(); }).ok());
    } else {
      const uint8_t* p = ti.data;
      auto copy = [p](std::span<uint8_t> o) { std::memcpy(o.data(), p, o.size()); return OkStatus(); };
      ASSERT_TRUE(wt.AddTensor(ti.name, ti.type, dims, copy).ok());
      ASSERT_TRUE(wd.AddTensor(ti.name, ti.type, dims, copy).ok());
    }
  }
  ASSERT_TRUE(wt.Write(dir.Path("t.gguf")).ok());
  ASSERT_TRUE(wd.Write(dir.Path("d.gguf")).ok());
  auto gt = GgufFile::Open(dir.Path("t.gguf"));
  auto gd = GgufFile::Open(dir.Path("d.gguf"));
  ASSERT_TRUE(gt.ok() && gd.ok());
  auto mt = LlamaModel::Load(*gt);
  auto md = LlamaModel::Load(*gd);
  ASSERT_TRUE(mt.ok()) << mt.status().message();
  ASSERT_TRUE(md.ok()) << md.status().message();
  EXPECT_EQ(mt->layers[0].wq.type, t);

  // Prefill 12 tokens as one batch, then decode 4; compare every step's logits.
  LlamaSession st(*mt, 32, 2), sd(*md, 32, 2);
  const std::vector<int32_t> prompt = {1, 17, 300, 42, 5, 99, 128, 7, 64, 256, 3, 511};
  const int64_t V = mt->config().n_vocab;
  // Measured: 3e-7 with F32 activations, 0.8-1.5% with Q8 activations (the rounding of 8-bit activations).
  const double tol = ActTypeFor(t) == GgmlType::kF32 ? 1e-5 : 0.03;
  auto compare = [&](const float* a, const float* b, const char* what) {
    double diff = 0, norm = 0;
    for (int64_t i = 0; i < V; ++i) {
      ASSERT_TRUE(std::isfinite(a[i])) << what;
      diff += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
      norm += static_cast<double>(b[i]) * b[i];
    }
    EXPECT_LE(std::sqrt(diff / norm), tol) << TypeInfo(t).name << " " << what;
  };
  std::vector<float> a(V);
  const float* lt = st.Forward(prompt, 0);
  std::copy(lt, lt + V, a.begin());
  compare(a.data(), sd.Forward(prompt, 0), "prefill");
  for (int i = 0; i < 4; ++i) {
    const int32_t next = static_cast<int32_t>(std::max_element(a.begin(), a.end()) - a.begin());
    lt = st.Forward(next, 12 + i);
    std::copy(lt, lt + V, a.begin());
    compare(a.data(), sd.Forward(next, 12 + i), "decode");
  }
}

std::vector<GgmlType> FormatTypes() {
  using enum GgmlType;
  return {kF32,  kF16,  kBF16, kQ4_0,   kQ4_1,  kQ5_0,   kQ5_1,   kQ8_0,   kQ2_K,   kQ3_K,   kQ4_K,   kQ5_K,  kQ6_K,
          kIQ4_NL, kIQ4_XS, kTQ1_0, kTQ2_0, kIQ3_XXS, kIQ3_S, kIQ2_XXS, kIQ2_XS, kIQ2_S, kIQ1_S, kIQ1_M};
}

INSTANTIATE_TEST_SUITE_P(Formats, EveryType, ::testing::ValuesIn(FormatTypes()),
                         [](const auto& p) { return std::string(TypeInfo(p.param).name); });

}  // namespace
}  // namespace lowbit

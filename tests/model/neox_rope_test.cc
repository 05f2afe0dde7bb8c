// NeoX RoPE (rotating pairs (i, i + d/2) instead of (2i, 2i + 1)): a "qwen2" copy of a llama model
// whose Q and K rows are permuted within each head (new row i = old row 2i, new row i + d/2 = old
// row 2i + 1) computes the same attention scores, so it must give the llama model's logits. This
// checks the NeoX path against the normal one without any hand-written reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <vector>

#include "lowbit/formats/gguf_writer.h"
#include "lowbit/model/llama.h"
#include "model/synth_tiny.h"

namespace lowbit {
namespace {

TEST(NeoxRope, PermutedQwen2CopyGivesTheSameLogits) {
  testing::TempDir dir;
  auto src = testing::SynthTiny(dir);  // dim 256, 4 heads of 64, 2 KV heads
  ASSERT_TRUE(src.ok());
  auto llama = LlamaModel::Load(*src);
  ASSERT_TRUE(llama.ok());
  ASSERT_FALSE(llama->config().rope_neox);
  const int64_t hd = llama->config().head_dim;
  ASSERT_EQ(llama->config().rope_dim, hd);

  GgufWriter w;
  for (const GgufKv& kv : src->kvs()) {
    std::string key = kv.key;
    if (key.rfind("llama.", 0) == 0) key = "qwen2." + key.substr(6);
    w.SetKv(key, key == "general.architecture" ? GgufValue::String("qwen2") : kv.value);
  }
  std::map<std::string, std::vector<float>> permuted;
  for (const GgufTensorInfo& ti : src->tensors()) {
    const std::span<const uint64_t> dims(ti.dims.data(), ti.n_dims);
    const bool qk = ti.name.find("attn_q.weight") != std::string::npos || ti.name.find("attn_k.weight") != std::string::npos;
    if (!qk) {
      const uint8_t* p = ti.data;
      ASSERT_TRUE(w.AddTensor(ti.name, ti.type, dims, [p](std::span<uint8_t> o) { std::memcpy(o.data(), p, o.size()); return OkStatus(); }).ok());
      continue;
    }
    ASSERT_EQ(ti.type, GgmlType::kF32);
    const int64_t cols = static_cast<int64_t>(ti.dims[0]), rows = static_cast<int64_t>(ti.dims[1]);
    const auto* in = reinterpret_cast<const float*>(ti.data);
    std::vector<float>& out = permuted[ti.name];
    out.resize(static_cast<size_t>(rows * cols));
    for (int64_t h = 0; h < rows / hd; ++h) {
      for (int64_t i = 0; i < hd / 2; ++i) {
        std::memcpy(&out[(h * hd + i) * cols], &in[(h * hd + 2 * i) * cols], cols * sizeof(float));
        std::memcpy(&out[(h * hd + i + hd / 2) * cols], &in[(h * hd + 2 * i + 1) * cols], cols * sizeof(float));
      }
    }
    const std::vector<float>* data = &out;
    ASSERT_TRUE(w.AddTensor(ti.name, ti.type, dims, [data](std::span<uint8_t> o) { std::memcpy(o.data(), data->data(), o.size()); return OkStatus(); }).ok());
  }
  ASSERT_TRUE(w.Write(dir.Path("qwen2.gguf")).ok());
  auto g2 = GgufFile::Open(dir.Path("qwen2.gguf"));
  ASSERT_TRUE(g2.ok());
  auto qwen = LlamaModel::Load(*g2);
  ASSERT_TRUE(qwen.ok()) << qwen.status().message();
  ASSERT_TRUE(qwen->config().rope_neox);

  LlamaSession a(*llama, 32, 1), b(*qwen, 32, 1);
  const std::vector<int32_t> prompt = {1, 9, 200, 31, 77, 400, 5};
  const int64_t V = llama->config().n_vocab;
  std::vector<float> la(V);
  const float* pa = a.Forward(prompt, 0);
  std::copy(pa, pa + V, la.begin());
  const float* pb = b.Forward(prompt, 0);
  double diff = 0, norm = 0;
  for (int64_t i = 0; i < V; ++i) {
    diff += (static_cast<double>(la[i]) - pb[i]) * (static_cast<double>(la[i]) - pb[i]);
    norm += static_cast<double>(la[i]) * la[i];
  }
  EXPECT_LE(std::sqrt(diff / norm), 1e-5);
  // (Checked when written: with qwen2 left out of the NeoX list this fails, the load asserts aside.)
}

}  // namespace
}  // namespace lowbit

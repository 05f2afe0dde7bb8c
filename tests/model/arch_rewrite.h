// Test writer: a llama GGUF (F32 attention and FFN weights) re-expressed as another architecture that
// computes the same function, so that the one forward's other paths can be checked against the
// llama path on a trained model:
// - qwen2: zero Q/K/V biases, NeoX RoPE (Q and K rows permuted within each head: new row i = old
//   row 2i, new row i + d/2 = old row 2i + 1, so NeoX's rotation of (i, i + d/2) is llama's of (2i, 2i + 1));
// - qwen (first Qwen): the same rows fused into attn_qkv with a zero attn_qkv.bias, and
//   feed_forward_length written as twice the FFN width (as its converter does);
// - phi3: fused attn_qkv (no bias) and ffn_up holding the gate rows then the up rows, NeoX RoPE.
// - a mixture of experts (MoeRewrite): every expert a copy of the dense FFN, so that any routing
//   whose weights sum to 1 computes the dense FFN: llama (Mixtral: normalized weights, a random
//   router), or qwen2moe with a zero router (every expert 1/n_expert, the n_used lowest chosen:
//   the experts give n_used / n_expert of the FFN) and a shared expert whose down rows are scaled
//   so that, at its gate's sigmoid(0) = 1/2, it gives the rest.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lowbit/eval/perplexity.h"
#include "lowbit/formats/gguf_reader.h"
#include "lowbit/formats/gguf_vocab.h"
#include "lowbit/formats/gguf_writer.h"
#include "lowbit/model/llama.h"

namespace lowbit::testing {

// The perplexity of the model file `path` on `text` (context 256, `chunks` chunks, 2 threads): what a
// rewritten file and the llama file it came from are compared by.
inline double FilePerplexity(const std::string& path, const std::string& text, int64_t chunks) {
  auto g = GgufFile::Open(path);
  EXPECT_TRUE(g.ok()) << g.status().message();
  auto m = LlamaModel::Load(*g);
  EXPECT_TRUE(m.ok()) << m.status().message();
  auto v = VocabFromGguf(*g);
  EXPECT_TRUE(v.ok());
  auto r = Perplexity(*m, *v, text, {256, chunks, 2});
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? r->ppl : 0;
}

struct MoeRewrite {
  int64_t n_expert = 0, n_used = 0;
  bool shared = false;        // qwen2moe's shared expert (then the router is zero)
  float router_scale = 0.1f;  // N(0, scale) router weights (without a shared expert)
};

inline Status WriteAs(const GgufFile& src, const std::string& arch, const std::string& path, const MoeRewrite& moe = {}) {
  const bool fused_qkv = arch == "qwen" || arch == "phi3", fused_up = arch == "phi3";
  const bool bias = arch == "qwen" || arch == "qwen2";
  GgufWriter w;
  int64_t n_head = 0, n_head_kv = 0, n_embd = 0;
  for (const GgufKv& kv : src.kvs()) {
    std::string key = kv.key;
    if (key.rfind("llama.", 0) == 0) key = arch + "." + key.substr(6);
    GgufValue v = key == "general.architecture" ? GgufValue::String(arch) : kv.value;
    if (key == arch + ".attention.head_count") n_head = static_cast<int64_t>(*kv.value.AsUInt());
    if (key == arch + ".attention.head_count_kv") n_head_kv = static_cast<int64_t>(*kv.value.AsUInt());
    if (key == arch + ".embedding_length") n_embd = static_cast<int64_t>(*kv.value.AsUInt());
    if (key == arch + ".feed_forward_length" && arch == "qwen") v = GgufValue::U32(static_cast<uint32_t>(2 * *kv.value.AsUInt()));
    w.SetKv(key, v);
    if (key == arch + ".feed_forward_length" && moe.n_expert > 0) {
      w.SetKv(arch + ".expert_feed_forward_length", kv.value);
      if (moe.shared) w.SetKv(arch + ".expert_shared_feed_forward_length", kv.value);
    }
  }
  if (moe.n_expert > 0) {
    w.SetKv(arch + ".expert_count", GgufValue::U32(static_cast<uint32_t>(moe.n_expert)));
    w.SetKv(arch + ".expert_used_count", GgufValue::U32(static_cast<uint32_t>(moe.n_used)));
  }
  if (n_head_kv == 0) n_head_kv = n_head;
  const int64_t hd = n_embd / n_head;
  // Tensors built here live until the file is written.
  auto keep = std::make_shared<std::map<std::string, std::vector<uint8_t>>>();
  auto rows_of = [&](const std::string& name) -> std::vector<uint8_t> {
    const GgufTensorInfo* t = src.FindTensor(name);
    std::vector<uint8_t> out(t->data, t->data + t->n_bytes);
    const bool qk = name.find("attn_q.weight") != std::string::npos || name.find("attn_k.weight") != std::string::npos;
    if (!qk || t->type != GgmlType::kF32 || arch == "llama") return out;  // llama keeps its own RoPE layout
    const uint64_t rb = t->dims[0] * 4;
    for (uint64_t h = 0; h < t->dims[1] / static_cast<uint64_t>(hd); ++h) {
      for (int64_t i = 0; i < hd / 2; ++i) {
        std::memcpy(&out[(h * hd + i) * rb], t->data + (h * hd + 2 * i) * rb, rb);
        std::memcpy(&out[(h * hd + i + hd / 2) * rb], t->data + (h * hd + 2 * i + 1) * rb, rb);
      }
    }
    return out;
  };
  auto add = [&](const std::string& name, GgmlType type, std::vector<uint64_t> dims, std::vector<uint8_t> bytes) -> Status {
    const std::vector<uint8_t>* data = &((*keep)[name] = std::move(bytes));
    return w.AddTensor(name, type, dims, [data](std::span<uint8_t> o) {
      std::memcpy(o.data(), data->data(), o.size());
      return OkStatus();
    });
  };
  auto cat = [](std::vector<uint8_t> a, const std::vector<uint8_t>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  for (const GgufTensorInfo& t : src.tensors()) {
    const std::string& n = t.name;
    const std::vector<uint64_t> dims(t.dims.begin(), t.dims.begin() + t.n_dims);
    const size_t dot = n.rfind('.', n.size() - 8);  // "blk.3." of "blk.3.attn_q.weight"
    const std::string b = n.substr(0, dot + 1);
    if (n.ends_with("attn_q.weight")) {
      const uint64_t q = dims[1], kv = static_cast<uint64_t>(n_head_kv * hd);
      if (fused_qkv) {
        std::vector<uint8_t> qkv = cat(cat(rows_of(n), rows_of(b + "attn_k.weight")), rows_of(b + "attn_v.weight"));
        LOWBIT_RETURN_IF_ERROR(add(b + "attn_qkv.weight", t.type, {dims[0], q + 2 * kv}, std::move(qkv)));
        if (bias) LOWBIT_RETURN_IF_ERROR(add(b + "attn_qkv.bias", GgmlType::kF32, {q + 2 * kv}, std::vector<uint8_t>((q + 2 * kv) * 4)));
        continue;
      }
      LOWBIT_RETURN_IF_ERROR(add(n, t.type, dims, rows_of(n)));
      if (bias) {
        LOWBIT_RETURN_IF_ERROR(add(b + "attn_q.bias", GgmlType::kF32, {q}, std::vector<uint8_t>(q * 4)));
        LOWBIT_RETURN_IF_ERROR(add(b + "attn_k.bias", GgmlType::kF32, {kv}, std::vector<uint8_t>(kv * 4)));
        LOWBIT_RETURN_IF_ERROR(add(b + "attn_v.bias", GgmlType::kF32, {kv}, std::vector<uint8_t>(kv * 4)));
      }
      continue;
    }
    if ((n.ends_with("attn_k.weight") || n.ends_with("attn_v.weight")) && fused_qkv) continue;
    if (n.ends_with("ffn_gate.weight") && fused_up) {
      const std::vector<uint8_t> up = rows_of(b + "ffn_up.weight");
      LOWBIT_RETURN_IF_ERROR(add(b + "ffn_up.weight", t.type, {dims[0], 2 * dims[1]}, cat(rows_of(n), up)));
      continue;
    }
    if (n.ends_with("ffn_up.weight") && fused_up) continue;
    if (moe.n_expert > 0 && (n.ends_with("ffn_gate.weight") || n.ends_with("ffn_up.weight") || n.ends_with("ffn_down.weight"))) {
      const std::string kind = n.substr(dot + 1, n.size() - dot - 1 - 7);  // ffn_gate, ffn_up, ffn_down
      std::vector<uint8_t> all;
      for (int64_t e = 0; e < moe.n_expert; ++e) all = cat(std::move(all), rows_of(n));
      LOWBIT_RETURN_IF_ERROR(add(b + kind + "_exps.weight", t.type, {dims[0], dims[1], static_cast<uint64_t>(moe.n_expert)}, std::move(all)));
      if (moe.shared) {
        std::vector<uint8_t> rows = rows_of(n);
        if (kind == "ffn_down") {
          if (t.type != GgmlType::kF32) return Errorf("the shared-expert rewrite needs F32 ffn_down");
          const float scale = 2.0f * (1.0f - static_cast<float>(moe.n_used) / static_cast<float>(moe.n_expert));
          for (size_t i = 0; i < rows.size(); i += 4) {
            float f;
            std::memcpy(&f, &rows[i], 4);
            f *= scale;
            std::memcpy(&rows[i], &f, 4);
          }
        }
        LOWBIT_RETURN_IF_ERROR(add(b + kind + "_shexp.weight", t.type, dims, std::move(rows)));
      }
      if (kind != "ffn_gate") continue;
      // The router [n_expert][n_embd] (and the shared expert's gate vector, zero).
      std::vector<float> router(static_cast<size_t>(moe.n_expert * n_embd), 0.0f);
      if (!moe.shared) {
        uint64_t state = std::hash<std::string>{}(n) | 1;
        for (float& r : router) {  // a sum of uniforms: roughly N(0, scale)
          float u = 0;
          for (int i = 0; i < 12; ++i) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            u += static_cast<float>(state >> 40) / static_cast<float>(1ull << 24);
          }
          r = (u - 6.0f) * moe.router_scale;
        }
      }
      std::vector<uint8_t> rb(router.size() * 4);
      std::memcpy(rb.data(), router.data(), rb.size());
      LOWBIT_RETURN_IF_ERROR(add(b + "ffn_gate_inp.weight", GgmlType::kF32, {static_cast<uint64_t>(n_embd), static_cast<uint64_t>(moe.n_expert)}, std::move(rb)));
      if (moe.shared) {
        LOWBIT_RETURN_IF_ERROR(add(b + "ffn_gate_inp_shexp.weight", GgmlType::kF32, {static_cast<uint64_t>(n_embd)},
                                   std::vector<uint8_t>(static_cast<size_t>(n_embd) * 4)));
      }
      continue;
    }
    LOWBIT_RETURN_IF_ERROR(add(n, t.type, dims, rows_of(n)));
  }
  return w.Write(path);
}

}  // namespace lowbit::testing

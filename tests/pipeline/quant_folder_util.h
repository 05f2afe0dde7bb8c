// Builds a GPTQ or AWQ Hugging Face folder from a float one (stories5M), the way the quantizing
// tools lay it out: every linear of the decoder quantized by quant/linear_quant.h (RTN on the spec's
// grid; with act-order, on a fixed random column order, so g_idx is a permutation as GPTQ's desc_act
// writes it), packed by formats' AddQuantizedLinear, config.json with quantization_config plus the
// tool's own config file, tokenizer files copied. Beside it, a float "reference" folder whose linears
// are the dequantized values (F32): what the quantized folder must compute, through the float path.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <numeric>
#include <random>
#include <string>

#include "lowbit/formats/int_quant.h"
#include "lowbit/formats/quant_checkpoint.h"
#include "lowbit/formats/quant_config.h"
#include "lowbit/formats/safetensors.h"
#include "lowbit/quant/linear_quant.h"
#include "test_data.h"

namespace lowbit::testing {

struct QuantFolderSpec {
  QuantConfig config;
  LinearQuantSpec spec;  // bits / sym / group_size should agree with the config
  bool act_order = false;
  uint32_t seed = 5;
  ScaleDtype scale_dtype = ScaleDtype::kF16;  // with spec.scale_rounding to match
};

inline bool IsDecoderLinear(const std::string& name) {
  for (const char* m : {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}) {
    if (name.find(std::string(".") + m + ".weight") != std::string::npos) return true;
  }
  return false;
}

// Quantizes w [rows][cols] (F32) as `s` says into an IntQuantLinear.
inline IntQuantLinear QuantizeForFolder(const float* w, int64_t rows, int64_t cols, const QuantFolderSpec& s, std::mt19937& rng) {
  std::vector<int32_t> perm(static_cast<size_t>(cols));
  std::iota(perm.begin(), perm.end(), 0);
  if (s.act_order) std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<float> wp(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < cols; ++j) wp[r * cols + j] = w[r * cols + perm[j]];
  }
  auto lq = QuantizeLinear(wp.data(), rows, cols, s.spec);
  EXPECT_TRUE(lq.ok()) << lq.status().message();
  IntQuantLinear q;
  q.bits = lq->bits;
  q.rows = rows;
  q.cols = cols;
  q.group_size = lq->group_size;
  q.codes.resize(static_cast<size_t>(rows * cols));
  q.g_idx.resize(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) {
    q.g_idx[perm[j]] = lq->g_idx[j];
    for (int64_t r = 0; r < rows; ++r) q.codes[r * cols + perm[j]] = lq->codes[r * cols + j];
  }
  q.scales = lq->scales;
  q.zeros = lq->zeros;
  q.scale_dtype = s.scale_dtype;
  return q;
}

inline void WriteText(const std::string& path, const std::string& text) {
  WriteFileBytes(path, std::vector<uint8_t>(text.begin(), text.end()));
}

// Writes the quantized folder to `qdir` and the dequantized float folder to `refdir` from the float
// folder `src`; returns the quantized layers by HF module name (HF row order).
inline std::map<std::string, IntQuantLinear> BuildQuantFolder(const std::string& src, const QuantFolderSpec& s,
                                                              const std::string& qdir, const std::string& refdir) {
  namespace fs = std::filesystem;
  std::map<std::string, IntQuantLinear> layers;
  auto model = SafetensorsModel::Open(src);
  EXPECT_TRUE(model.ok()) << model.status().message();
  if (!model.ok()) return layers;
  std::mt19937 rng(s.seed);
  SafetensorsWriter qw, rw;
  qw.SetMetadata("format", "pt");
  rw.SetMetadata("format", "pt");
  std::map<std::string, std::vector<float>> deq;  // keeps the reference values alive until Write
  for (const StTensor* t : model->tensors()) {
    EXPECT_EQ(t->dtype, StDtype::kF32) << t->name;
    const auto* w = reinterpret_cast<const float*>(t->data.data());
    if (!IsDecoderLinear(t->name) && !(s.config.lm_head && t->name == "lm_head.weight")) {
      const std::span<const uint8_t> bytes = t->data;
      auto copy = [bytes](std::span<uint8_t> out) {
        std::memcpy(out.data(), bytes.data(), out.size());
        return OkStatus();
      };
      EXPECT_TRUE(qw.Add(t->name, t->dtype, t->shape, copy).ok());
      EXPECT_TRUE(rw.Add(t->name, t->dtype, t->shape, copy).ok());
      continue;
    }
    const int64_t rows = static_cast<int64_t>(t->shape[0]), cols = static_cast<int64_t>(t->shape[1]);
    const std::string module = t->name.substr(0, t->name.size() - std::strlen(".weight"));
    IntQuantLinear q = QuantizeForFolder(w, rows, cols, s, rng);
    Status st = AddQuantizedLinear(qw, module, q, s.config);
    EXPECT_TRUE(st.ok()) << module << ": " << st.message();
    std::vector<float>& v = deq[t->name];
    v.resize(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r) q.DequantizeRow(r, v.data() + r * cols);
    const float* vp = v.data();
    EXPECT_TRUE(rw.Add(t->name, StDtype::kF32, t->shape, [vp](std::span<uint8_t> out) {
                    std::memcpy(out.data(), vp, out.size());
                    return OkStatus();
                  }).ok());
    layers[module] = std::move(q);
  }
  fs::create_directories(qdir);
  fs::create_directories(refdir);
  EXPECT_TRUE(qw.Write((fs::path(qdir) / "model.safetensors").string()).ok());
  EXPECT_TRUE(rw.Write((fs::path(refdir) / "model.safetensors").string()).ok());
  for (const char* f : {"tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
    if (!fs::exists(fs::path(src) / f)) continue;
    fs::copy_file(fs::path(src) / f, fs::path(qdir) / f, fs::copy_options::overwrite_existing);
    fs::copy_file(fs::path(src) / f, fs::path(refdir) / f, fs::copy_options::overwrite_existing);
  }
  const std::vector<uint8_t> cfg_bytes = ReadFileBytes((fs::path(src) / "config.json").string());
  const std::string cfg(cfg_bytes.begin(), cfg_bytes.end());
  WriteText((fs::path(refdir) / "config.json").string(), cfg);
  auto with = WithQuantizationConfig(cfg, s.config, "config.json");
  EXPECT_TRUE(with.ok()) << with.status().message();
  if (with.ok()) WriteText((fs::path(qdir) / "config.json").string(), *with);
  if (s.config.method == QuantMethod::kAwq) {
    WriteText((fs::path(qdir) / "quant_config.json").string(), AwqQuantConfigJson(s.config));
  } else {
    WriteText((fs::path(qdir) / "quantize_config.json").string(), GptqQuantizeConfigJson(s.config));
  }
  return layers;
}

// Rewrites `qdir`'s config.json (from `src`'s) and the tool's config file with `cfg`: a folder whose
// config no longer matches its tensors.
inline void RewriteConfigs(const std::string& src, const std::string& qdir, const QuantConfig& cfg) {
  namespace fs = std::filesystem;
  const std::vector<uint8_t> bytes = ReadFileBytes((fs::path(src) / "config.json").string());
  auto with = WithQuantizationConfig(std::string(bytes.begin(), bytes.end()), cfg, "config.json");
  ASSERT_TRUE(with.ok());
  WriteText((fs::path(qdir) / "config.json").string(), *with);
  WriteText((fs::path(qdir) / (cfg.method == QuantMethod::kAwq ? "quant_config.json" : "quantize_config.json")).string(),
            cfg.method == QuantMethod::kAwq ? AwqQuantConfigJson(cfg) : GptqQuantizeConfigJson(cfg));
}

// Rewrites `qdir`'s model.safetensors without tensor `drop`.
inline void DropTensor(const std::string& qdir, const std::string& drop) {
  namespace fs = std::filesystem;
  const std::string path = (fs::path(qdir) / "model.safetensors").string();
  std::vector<uint8_t> all;
  {
    auto f = SafetensorsFile::Open(path);
    ASSERT_TRUE(f.ok());
    SafetensorsWriter w;
    bool dropped = false;
    for (const StTensor& t : f->tensors()) {
      if (t.name == drop) {
        dropped = true;
        continue;
      }
      const std::span<const uint8_t> b = t.data;
      ASSERT_TRUE(w.Add(t.name, t.dtype, t.shape, [b](std::span<uint8_t> out) {
                     std::memcpy(out.data(), b.data(), out.size());
                     return OkStatus();
                   }).ok());
    }
    ASSERT_TRUE(dropped) << drop;
    ASSERT_TRUE(w.Write(path + ".new").ok());
  }
  fs::rename(path + ".new", path);
}

// A GPTQ config and matching grid spec.
inline QuantFolderSpec GptqSpec(int bits, int64_t group, bool sym, bool act_order,
                                CheckpointFormat format = CheckpointFormat::kGptq) {
  QuantFolderSpec s;
  s.config.method = QuantMethod::kGptq;
  s.config.format = format;
  s.config.bits = bits;
  s.config.group_size = group;
  s.config.sym = sym;
  s.config.desc_act = act_order;
  s.spec.bits = bits;
  s.spec.sym = sym;
  s.spec.group_size = group;
  s.spec.convention = QuantConvention::kGptq;
  s.act_order = act_order;
  return s;
}

inline QuantFolderSpec AwqSpec(int64_t group) {
  QuantFolderSpec s;
  s.config.method = QuantMethod::kAwq;
  s.config.format = CheckpointFormat::kAwqGemm;
  s.config.bits = 4;
  s.config.group_size = group;
  s.config.sym = false;
  s.config.zero_point = true;
  s.spec.bits = 4;
  s.spec.sym = false;
  s.spec.group_size = group;
  s.spec.convention = QuantConvention::kAwq;
  return s;
}

}  // namespace lowbit::testing

#include "lowbit/pipeline/synth.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

#include <fmt/format.h>

#include "lowbit/base/thread_pool.h"
#include "lowbit/formats/gguf_writer.h"
#include "lowbit/pipeline/llama_metadata.h"
#include "lowbit/pipeline/quant_mix.h"
#include "lowbit/quant/quantize.h"

namespace lowbit {
namespace {

uint64_t SplitMix(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t HashName(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  return h;
}

// N(0, sigma) by Box-Muller from a per-row SplitMix stream.
void RandomRow(uint64_t seed, float sigma, float* out, int64_t n) {
  uint64_t s = seed;
  for (int64_t i = 0; i < n; i += 2) {
    const double u1 = (static_cast<double>(SplitMix(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    const double u2 = static_cast<double>(SplitMix(s) >> 11) * (1.0 / 9007199254740992.0);
    const double r = std::sqrt(-2.0 * std::log(u1)) * sigma;
    out[i] = static_cast<float>(r * std::cos(6.283185307179586 * u2));
    if (i + 1 < n) out[i + 1] = static_cast<float>(r * std::sin(6.283185307179586 * u2));
  }
}

Vocab SyntheticVocab(int64_t n, bool phi3) {
  Vocab v;
  v.model = "llama";
  v.unk_id = 0;
  v.bos_id = 1;
  v.eos_id = 2;
  v.add_bos = 1;
  v.add_space_prefix = 1;
  auto add = [&](std::string t, float score, TokenType type) {
    v.tokens.push_back(std::move(t));
    v.scores.push_back(score);
    v.token_types.push_back(static_cast<int32_t>(type));
  };
  add("<unk>", 0, TokenType::kUnknown);
  add("<s>", 0, TokenType::kControl);
  add("</s>", 0, TokenType::kControl);
  for (int b = 0; b < 256; ++b) add(fmt::format("<0x{:02X}>", b), 0, TokenType::kByte);
  // Phi-3's vocabulary ends with its chat tokens; llama.cpp's loader looks <|endoftext|> up for
  // any model named phi3.
  const std::vector<std::string> tail = phi3 ? std::vector<std::string>{"<|endoftext|>", "<|end|>"} : std::vector<std::string>{};
  for (int64_t i = static_cast<int64_t>(v.tokens.size()); i < n - static_cast<int64_t>(tail.size()); ++i) {
    add(fmt::format("\xe2\x96\x81w{}", i), -static_cast<float>(i), TokenType::kNormal);
  }
  for (const std::string& t : tail) add(t, 0, TokenType::kControl);
  return v;
}

}  // namespace

const std::vector<SynthShape>& SynthShapes() {
  // Hyperparameters from each model's config.json (Hugging Face).
  static const std::vector<SynthShape> shapes = {
      {"tinyllama-1.1b", 2048, 22, 32, 4, 5632, 32000, 2048, false, "TinyLlama 1.1B (Llama 2 architecture, 4 KV heads)"},
      {"llama3.2-1b", 2048, 16, 32, 8, 8192, 128256, 131072, true, "Llama 3.2 1B (tied embedding, 128k vocabulary, llama3 RoPE factors)",
       "llama", 0, 500000.0f, 0, true},
      {"llama3.2-3b", 3072, 28, 24, 8, 8192, 128256, 131072, true, "Llama 3.2 3B (tied embedding, 128k vocabulary, llama3 RoPE factors)",
       "llama", 0, 500000.0f, 0, true},
      {"llama2-7b", 4096, 32, 32, 32, 11008, 32000, 4096, false, "Llama 2 7B"},
      {"mistral-7b", 4096, 32, 32, 8, 14336, 32000, 32768, false, "Mistral 7B v0.2"},
      {"llama3-8b", 4096, 32, 32, 8, 14336, 128256, 8192, false, "Llama 3 / 3.1 8B (3.1: 131072 context)"},
      {"llama2-13b", 5120, 40, 40, 40, 13824, 32000, 4096, false, "Llama 2 13B"},
      {"llama2-70b", 8192, 80, 64, 8, 28672, 32000, 4096, false, "Llama 2 70B"},
      {"llama3-70b", 8192, 80, 64, 8, 28672, 128256, 8192, false, "Llama 3 / 3.1 70B"},
      {"stories15m", 288, 6, 6, 6, 768, 32000, 256, false, "llama2.c stories15M"},
      {"qwen2.5-0.5b", 896, 24, 14, 2, 4864, 151936, 32768, true, "Qwen2.5 0.5B (qwen2: Q/K/V biases)", "qwen2", 0, 1000000.0f},
      {"qwen2.5-1.5b", 1536, 28, 12, 2, 8960, 151936, 32768, true, "Qwen2.5 1.5B (qwen2: Q/K/V biases)", "qwen2", 0, 1000000.0f},
      {"qwen2.5-7b", 3584, 28, 28, 4, 18944, 152064, 32768, false, "Qwen2.5 7B (qwen2: Q/K/V biases)", "qwen2", 0, 1000000.0f},
      {"qwen3-0.6b", 1024, 28, 16, 8, 3072, 151936, 40960, true, "Qwen3 0.6B (qwen3: q/k norms, head size 128)", "qwen3", 128, 1000000.0f},
      {"qwen3-8b", 4096, 36, 32, 8, 12288, 151936, 40960, false, "Qwen3 8B (qwen3: q/k norms)", "qwen3", 128, 1000000.0f},
      {"qwen-1.8b", 2048, 24, 16, 16, 11008, 151936, 8192, false, "Qwen-1.8B (first Qwen: fused QKV with bias)", "qwen"},
      {"qwen-7b", 4096, 32, 32, 32, 22016, 151936, 8192, false, "Qwen-7B (first Qwen: fused QKV with bias)", "qwen"},
      {"phi3.5-mini", 3072, 32, 32, 32, 8192, 32064, 131072, false, "Phi-3.5-mini (phi3: fused QKV and gate/up, long/short RoPE factors)",
       "phi3"},
      {"gemma2-2b", 2304, 26, 8, 4, 9216, 256000, 8192, true, "Gemma 2 2B (GeGLU, post norms, soft-caps, sliding window 4096)", "gemma2",
       256, 10000.0f, 4096},
      {"gemma3-1b", 1152, 26, 4, 1, 6912, 262144, 32768, true, "Gemma 3 1B (q/k norms, 5 local : 1 global layers, window 512)", "gemma3",
       256, 1000000.0f, 512},
      // Mixtures of experts (decode reads only the chosen experts).
      {"qwen3-30b-a3b", 2048, 48, 32, 4, 6144, 151936, 40960, false, "Qwen3-30B-A3B (qwen3moe: 128 experts of 768, 8 per token, q/k norms)",
       "qwen3moe", 128, 1000000.0f, 0, false, 128, 8, 768},
      {"qwen2-57b-a14b", 3584, 28, 28, 4, 18944, 151936, 65536, false,
       "Qwen2-57B-A14B (qwen2moe: 64 experts of 2560, 8 per token, shared expert of 20480)", "qwen2moe", 0, 1000000.0f, 0, false, 64, 8,
       2560, 20480},
      {"mixtral-8x7b", 4096, 32, 32, 8, 14336, 32000, 32768, false, "Mixtral 8x7B (llama with 8 experts, 2 per token)", "llama", 0,
       1000000.0f, 0, false, 8, 2, 14336},
      {"tiny", 256, 2, 4, 2, 512, 512, 128, false, "a tiny model for tests"},
      {"tiny-wide", 1024, 1, 8, 2, 1024, 512, 128, false, "a tiny model for tests whose F32 rows are 4 KiB (held in memory, rows padded)"},
      // Tiny shapes of each family (tests and the llama.cpp comparison, bench/arch_vs_llamacpp.sh).
      {"tiny-llama3", 256, 2, 4, 2, 512, 512, 256, true, "tiny llama with llama3 RoPE factors", "llama", 0, 500000.0f, 0, true},
      {"tiny-qwen", 256, 2, 4, 4, 1024, 512, 256, false, "tiny first Qwen", "qwen"},
      {"tiny-qwen2", 256, 2, 4, 2, 512, 512, 256, true, "tiny qwen2", "qwen2", 0, 1000000.0f},
      {"tiny-qwen3", 256, 2, 4, 2, 512, 512, 256, true, "tiny qwen3 (head size 96: q width 384)", "qwen3", 96, 1000000.0f},
      {"tiny-phi3", 256, 2, 4, 4, 512, 512, 256, false, "tiny phi3", "phi3"},
      {"tiny-gemma2", 256, 4, 4, 2, 512, 512, 256, true, "tiny gemma2 (window 16)", "gemma2", 96, 10000.0f, 16},
      {"tiny-gemma3", 256, 6, 4, 1, 512, 512, 256, true, "tiny gemma3 (window 16, 5 local : 1 global)", "gemma3", 96, 1000000.0f, 16},
      {"tiny-qwen3moe", 256, 2, 4, 2, 512, 512, 256, true, "tiny qwen3moe (8 experts of 256, 2 per token)", "qwen3moe", 0, 1000000.0f, 0,
       false, 8, 2, 256},
      {"tiny-qwen2moe", 256, 2, 4, 2, 512, 512, 256, false, "tiny qwen2moe (16 experts of 256, 4 per token, shared expert of 512)",
       "qwen2moe", 0, 1000000.0f, 0, false, 16, 4, 256, 512},
      {"tiny-mixtral", 256, 2, 4, 2, 512, 512, 256, false, "tiny Mixtral (llama, 4 experts of 512, 2 per token)", "llama", 0, 10000.0f, 0,
       false, 4, 2, 512},
  };
  return shapes;
}

Expected<SynthShape> FindSynthShape(const std::string& name) {
  std::vector<std::string> names;
  for (const SynthShape& s : SynthShapes()) {
    if (s.name == name) return s;
    names.push_back(s.name);
  }
  return Errorf("unknown shape '{}'; choose one of: {}", name, fmt::join(names, ", "));
}

Expected<GgufWriter> SynthWriter(const SynthOptions& o) {
  LOWBIT_ASSIGN_OR_RETURN(SynthShape shape, FindSynthShape(o.shape));
  if (o.layers < 0 || o.layers > shape.n_layer) {
    return Errorf("--layers {}: the shape {} has {} layers", o.layers, shape.name, shape.n_layer);
  }
  if (o.layers > 0) shape.n_layer = o.layers;
  const SynthShape* sh = &shape;
  LOWBIT_ASSIGN_OR_RETURN(QuantMix mix, ResolveQuantMix(o.type));
  MixContext ctx;
  ctx.n_layers = static_cast<int>(sh->n_layer);
  ctx.n_head = static_cast<int>(sh->n_head);
  ctx.n_head_kv = static_cast<int>(sh->n_head_kv);

  const SynthShape& x = *sh;
  const bool gemma = x.arch == "gemma2" || x.arch == "gemma3";
  const int64_t hd = x.head_dim > 0 ? x.head_dim : x.n_embd / x.n_head;
  LlamaHparams hp;
  hp.arch = x.arch;
  hp.name = "synthetic-" + x.name + (o.layers > 0 ? "-" + std::to_string(o.layers) + "l" : "");
  hp.context_length = static_cast<uint32_t>(x.n_ctx);
  hp.embedding_length = static_cast<uint32_t>(x.n_embd);
  // The first Qwen's converter writes intermediate_size, twice the FFN width llama.cpp builds.
  hp.feed_forward_length = static_cast<uint32_t>(x.n_ff);
  hp.block_count = static_cast<uint32_t>(x.n_layer);
  hp.head_count = static_cast<uint32_t>(x.n_head);
  hp.head_count_kv = static_cast<uint32_t>(x.n_head_kv);
  hp.rope_dimension_count = static_cast<uint32_t>(hd);
  hp.rope_freq_base = x.rope_base;
  hp.rms_epsilon = gemma ? 1e-6f : 1e-5f;
  hp.vocab_size = static_cast<uint32_t>(x.n_vocab);
  GgufWriter w;
  for (const GgufKv& kv : LlamaModelKvs(hp)) w.SetKv(kv.key, kv.value);
  const std::string a = x.arch + ".";
  if (hd * x.n_head != x.n_embd || gemma) {
    w.SetKv(a + "attention.key_length", GgufValue::U32(static_cast<uint32_t>(hd)));
    w.SetKv(a + "attention.value_length", GgufValue::U32(static_cast<uint32_t>(hd)));
  }
  if (x.arch == "gemma2") {
    w.SetKv(a + "attn_logit_softcapping", GgufValue::F32(50.0f));
    w.SetKv(a + "final_logit_softcapping", GgufValue::F32(30.0f));
  }
  if (gemma) w.SetKv(a + "attention.sliding_window", GgufValue::U32(static_cast<uint32_t>(x.n_swa)));
  // phi3 (Phi-3.5's converter): long/short factors, attn factor sqrt(1 + ln(s) / ln(orig)).
  // Tiny shapes: 1/8 of the context, so that the long factors (the ones any real context beyond 4096
  // uses) are the ones compared with llama.cpp, which chooses on its context padded to 256.
  const int64_t phi_orig = x.n_ctx >= 8192 ? 4096 : x.n_ctx / 8;
  if (x.arch == "phi3") {
    const double scale = static_cast<double>(x.n_ctx) / static_cast<double>(phi_orig);
    w.SetKv(a + "rope.scaling.attn_factor", GgufValue::F32(static_cast<float>(std::sqrt(1.0 + std::log(scale) / std::log(static_cast<double>(phi_orig))))));
    w.SetKv(a + "rope.scaling.original_context_length", GgufValue::U32(static_cast<uint32_t>(phi_orig)));
  }
  if (o.vocab) {
    for (const GgufKv& kv : VocabKvs(SyntheticVocab(x.n_vocab, x.arch == "phi3"))) w.SetKv(kv.key, kv.value);
  }
  if (x.n_expert > 0) {
    w.SetKv(a + "expert_count", GgufValue::U32(static_cast<uint32_t>(x.n_expert)));
    w.SetKv(a + "expert_used_count", GgufValue::U32(static_cast<uint32_t>(x.n_expert_used)));
    if (x.arch != "llama") w.SetKv(a + "expert_feed_forward_length", GgufValue::U32(static_cast<uint32_t>(x.n_ff_exp)));
    if (x.n_ff_shexp > 0) w.SetKv(a + "expert_shared_feed_forward_length", GgufValue::U32(static_cast<uint32_t>(x.n_ff_shexp)));
  }
  w.SetKv("general.file_type", GgufValue::U32(mix.file_type));
  w.SetKv("general.quantization_version", GgufValue::U32(2));

  // Made when the first tensor is written, so that describing the file starts no threads.
  auto pool = std::make_shared<std::unique_ptr<ThreadPool>>();
  const int threads = o.threads;
  const uint64_t seed = o.seed;
  const int64_t repeat = o.repeat_rows;
  int i_attn_v = 0, i_ffn_down = 0;
  // What a 1-D tensor holds: norms (1, or 1 + N(0, 0.1) for the families beyond llama, so that a
  // norm applied wrongly shows), biases N(0, 0.02), or given values (RoPE factors).
  enum class Fill { kMatrix, kRouter, kNorm, kBias, kValues };
  const bool jitter = x.arch != "llama";
  // experts > 0: a 3-D tensor of `experts` [rows][cols] matrices; Fill::kRouter: a matrix kept F32.
  auto add = [&](const std::string& name, int64_t rows, int64_t cols, Fill fill = Fill::kMatrix,
                 std::vector<float> values = {}, int64_t experts = 0) -> Status {
    const bool matrix = fill == Fill::kMatrix || fill == Fill::kRouter;
    GgmlType type = GgmlType::kF32;
    if (fill == Fill::kMatrix) type = ChooseTensorType(mix, ctx, name, static_cast<uint64_t>(cols), i_attn_v, i_ffn_down, nullptr);
    if (name.find("attn_v.weight") != std::string::npos || name.find("attn_qkv.weight") != std::string::npos) ++i_attn_v;
    if (name.find("ffn_down") != std::string::npos) ++i_ffn_down;
    std::vector<uint64_t> dims = {static_cast<uint64_t>(cols)};
    if (matrix) dims.push_back(static_cast<uint64_t>(rows));
    if (experts > 0) {
      dims.push_back(static_cast<uint64_t>(experts));
      rows *= experts;
    }
    const uint64_t row_bytes = *RowBytes(type, static_cast<uint64_t>(cols));
    const uint64_t name_seed = HashName(name) ^ seed;
    return w.AddTensor(name, type, dims, [=, values = std::move(values)](std::span<uint8_t> out) {
      FromFloatFn from = FromFloatFor(type);
      if (*pool == nullptr) *pool = std::make_unique<ThreadPool>(threads);
      const int64_t drawn = repeat > 0 ? std::min(rows, repeat) : rows;
      (*pool)->ParallelFor(static_cast<size_t>(drawn), [&](size_t b, size_t e) {
        std::vector<float> row(static_cast<size_t>(cols));
        for (size_t r = b; r < e; ++r) {
          if (fill == Fill::kValues) {
            row = values;
          } else if (fill == Fill::kNorm && !jitter) {
            std::fill(row.begin(), row.end(), 1.0f);
          } else {
            RandomRow(name_seed + r * 0x9E3779B97F4A7C15ull, fill == Fill::kNorm ? 0.1f : 0.02f, row.data(), cols);
            if (fill == Fill::kNorm) {
              for (float& v : row) v += 1.0f;
            }
          }
          from(row.data(), out.data() + r * row_bytes, cols, nullptr);
        }
      }, 1);
      for (int64_t r = drawn; r < rows; ++r) {
        std::memcpy(out.data() + r * row_bytes, out.data() + (r % drawn) * row_bytes, row_bytes);
      }
      return OkStatus();
    });
  };
  const int64_t E = x.n_embd, q = x.n_head * hd, kv = x.n_head_kv * hd;
  const int64_t ff = x.arch == "qwen" ? x.n_ff / 2 : x.n_ff;
  LOWBIT_RETURN_IF_ERROR(add("token_embd.weight", x.n_vocab, E));
  LOWBIT_RETURN_IF_ERROR(add("output_norm.weight", 1, E, Fill::kNorm));
  if (!x.tied) LOWBIT_RETURN_IF_ERROR(add("output.weight", x.n_vocab, E));
  if (x.llama3_rope) LOWBIT_RETURN_IF_ERROR(add("rope_freqs.weight", 1, hd / 2, Fill::kValues, Llama3RopeFactors(x.rope_base, hd)));
  if (x.arch == "phi3") {
    // Synthetic factors in the range of Phi-3.5's: short near 1, long growing with the wavelength.
    std::vector<float> s_f(static_cast<size_t>(hd / 2)), l_f(static_cast<size_t>(hd / 2));
    for (int64_t i = 0; i < hd / 2; ++i) {
      const double t = static_cast<double>(i) / static_cast<double>(hd / 2 - 1);
      s_f[i] = static_cast<float>(1.0 + 0.1 * t);
      l_f[i] = static_cast<float>(1.0 + 40.0 * t * t);
    }
    LOWBIT_RETURN_IF_ERROR(add("rope_factors_long.weight", 1, hd / 2, Fill::kValues, l_f));
    LOWBIT_RETURN_IF_ERROR(add("rope_factors_short.weight", 1, hd / 2, Fill::kValues, s_f));
  }
  const bool fused_qkv = x.arch == "phi3" || x.arch == "qwen", qkv_bias = x.arch == "qwen" || x.arch == "qwen2" || x.arch == "qwen2moe";
  const bool qk_norm = x.arch == "qwen3" || x.arch == "qwen3moe" || x.arch == "gemma3";
  for (int64_t l = 0; l < x.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    if (fused_qkv) {
      LOWBIT_RETURN_IF_ERROR(add(p + "attn_qkv.weight", q + 2 * kv, E));
      if (qkv_bias) LOWBIT_RETURN_IF_ERROR(add(p + "attn_qkv.bias", 1, q + 2 * kv, Fill::kBias));
    } else {
      LOWBIT_RETURN_IF_ERROR(add(p + "attn_q.weight", q, E));
      LOWBIT_RETURN_IF_ERROR(add(p + "attn_k.weight", kv, E));
      LOWBIT_RETURN_IF_ERROR(add(p + "attn_v.weight", kv, E));
      if (qkv_bias) {
        LOWBIT_RETURN_IF_ERROR(add(p + "attn_q.bias", 1, q, Fill::kBias));
        LOWBIT_RETURN_IF_ERROR(add(p + "attn_k.bias", 1, kv, Fill::kBias));
        LOWBIT_RETURN_IF_ERROR(add(p + "attn_v.bias", 1, kv, Fill::kBias));
      }
    }
    if (qk_norm) {
      LOWBIT_RETURN_IF_ERROR(add(p + "attn_q_norm.weight", 1, hd, Fill::kNorm));
      LOWBIT_RETURN_IF_ERROR(add(p + "attn_k_norm.weight", 1, hd, Fill::kNorm));
    }
    LOWBIT_RETURN_IF_ERROR(add(p + "attn_output.weight", E, q));
    LOWBIT_RETURN_IF_ERROR(add(p + "attn_norm.weight", 1, E, Fill::kNorm));
    if (gemma) LOWBIT_RETURN_IF_ERROR(add(p + "post_attention_norm.weight", 1, E, Fill::kNorm));
    if (x.arch == "phi3") {
      LOWBIT_RETURN_IF_ERROR(add(p + "ffn_up.weight", 2 * ff, E));  // gate rows, then up rows
    } else if (x.n_expert > 0) {
      // As llama.cpp's converter orders them: the router, the experts, the shared expert.
      const int64_t ne = x.n_expert, fe = x.n_ff_exp, fs = x.n_ff_shexp;
      LOWBIT_RETURN_IF_ERROR(add(p + "ffn_gate_inp.weight", ne, E, Fill::kRouter));
      LOWBIT_RETURN_IF_ERROR(add(p + "ffn_gate_exps.weight", fe, E, Fill::kMatrix, {}, ne));
      LOWBIT_RETURN_IF_ERROR(add(p + "ffn_down_exps.weight", E, fe, Fill::kMatrix, {}, ne));
      LOWBIT_RETURN_IF_ERROR(add(p + "ffn_up_exps.weight", fe, E, Fill::kMatrix, {}, ne));
      if (fs > 0) {
        LOWBIT_RETURN_IF_ERROR(add(p + "ffn_gate_inp_shexp.weight", 1, E, Fill::kBias));
        LOWBIT_RETURN_IF_ERROR(add(p + "ffn_gate_shexp.weight", fs, E));
        LOWBIT_RETURN_IF_ERROR(add(p + "ffn_down_shexp.weight", E, fs));
        LOWBIT_RETURN_IF_ERROR(add(p + "ffn_up_shexp.weight", fs, E));
      }
    } else {
      LOWBIT_RETURN_IF_ERROR(add(p + "ffn_gate.weight", ff, E));
    }
    if (x.n_expert == 0) LOWBIT_RETURN_IF_ERROR(add(p + "ffn_down.weight", E, ff));
    if (x.arch != "phi3" && x.n_expert == 0) LOWBIT_RETURN_IF_ERROR(add(p + "ffn_up.weight", ff, E));
    LOWBIT_RETURN_IF_ERROR(add(p + "ffn_norm.weight", 1, E, Fill::kNorm));
    if (gemma) LOWBIT_RETURN_IF_ERROR(add(p + "post_ffw_norm.weight", 1, E, Fill::kNorm));
  }
  return w;
}

Expected<uint64_t> Synthesize(const SynthOptions& o) {
  LOWBIT_ASSIGN_OR_RETURN(GgufWriter w, SynthWriter(o));
  LOWBIT_RETURN_IF_ERROR(w.Write(o.output, o.show_progress));
  return w.FileSize();
}

}  // namespace lowbit

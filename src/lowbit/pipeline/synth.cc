#include "lowbit/pipeline/synth.h"

#include <cmath>
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

Vocab SyntheticVocab(int64_t n) {
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
  for (int64_t i = static_cast<int64_t>(v.tokens.size()); i < n; ++i) {
    add(fmt::format("\xe2\x96\x81w{}", i), -static_cast<float>(i), TokenType::kNormal);
  }
  return v;
}

}  // namespace

const std::vector<SynthShape>& SynthShapes() {
  // Hyperparameters from each model's config.json (Hugging Face).
  static const std::vector<SynthShape> shapes = {
      {"tinyllama-1.1b", 2048, 22, 32, 4, 5632, 32000, 2048, false, "TinyLlama 1.1B (Llama 2 architecture, 4 KV heads)"},
      {"llama3.2-1b", 2048, 16, 32, 8, 8192, 128256, 131072, true, "Llama 3.2 1B (tied embedding, 128k vocabulary)"},
      {"llama3.2-3b", 3072, 28, 24, 8, 8192, 128256, 131072, true, "Llama 3.2 3B (tied embedding, 128k vocabulary)"},
      {"llama2-7b", 4096, 32, 32, 32, 11008, 32000, 4096, false, "Llama 2 7B"},
      {"mistral-7b", 4096, 32, 32, 8, 14336, 32000, 32768, false, "Mistral 7B v0.2"},
      {"llama3-8b", 4096, 32, 32, 8, 14336, 128256, 8192, false, "Llama 3 / 3.1 8B (3.1: 131072 context)"},
      {"llama2-13b", 5120, 40, 40, 40, 13824, 32000, 4096, false, "Llama 2 13B"},
      {"llama2-70b", 8192, 80, 64, 8, 28672, 32000, 4096, false, "Llama 2 70B"},
      {"llama3-70b", 8192, 80, 64, 8, 28672, 128256, 8192, false, "Llama 3 / 3.1 70B"},
      {"stories15m", 288, 6, 6, 6, 768, 32000, 256, false, "llama2.c stories15M"},
      {"tiny", 256, 2, 4, 2, 512, 512, 128, false, "a tiny model for tests"},
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

  LlamaHparams hp;
  hp.name = "synthetic-" + sh->name + (o.layers > 0 ? "-" + std::to_string(o.layers) + "l" : "");
  hp.context_length = static_cast<uint32_t>(sh->n_ctx);
  hp.embedding_length = static_cast<uint32_t>(sh->n_embd);
  hp.feed_forward_length = static_cast<uint32_t>(sh->n_ff);
  hp.block_count = static_cast<uint32_t>(sh->n_layer);
  hp.head_count = static_cast<uint32_t>(sh->n_head);
  hp.head_count_kv = static_cast<uint32_t>(sh->n_head_kv);
  hp.rope_dimension_count = static_cast<uint32_t>(sh->n_embd / sh->n_head);
  hp.vocab_size = static_cast<uint32_t>(sh->n_vocab);
  GgufWriter w;
  for (const GgufKv& kv : LlamaModelKvs(hp)) w.SetKv(kv.key, kv.value);
  if (o.vocab) {
    for (const GgufKv& kv : VocabKvs(SyntheticVocab(sh->n_vocab))) w.SetKv(kv.key, kv.value);
  }
  w.SetKv("general.file_type", GgufValue::U32(mix.file_type));
  w.SetKv("general.quantization_version", GgufValue::U32(2));

  // Made when the first tensor is written, so that describing the file starts no threads.
  auto pool = std::make_shared<std::unique_ptr<ThreadPool>>();
  const int threads = o.threads;
  const uint64_t seed = o.seed;
  int i_attn_v = 0, i_ffn_down = 0;
  auto add = [&](const std::string& name, int64_t rows, int64_t cols) -> Status {
    const bool matrix = rows > 1;
    GgmlType type = GgmlType::kF32;
    if (matrix) type = ChooseTensorType(mix, ctx, name, static_cast<uint64_t>(cols), i_attn_v, i_ffn_down, nullptr);
    if (name.find("attn_v.weight") != std::string::npos) ++i_attn_v;
    if (name.find("ffn_down") != std::string::npos) ++i_ffn_down;
    std::vector<uint64_t> dims = {static_cast<uint64_t>(cols)};
    if (matrix) dims.push_back(static_cast<uint64_t>(rows));
    const uint64_t row_bytes = *RowBytes(type, static_cast<uint64_t>(cols));
    const uint64_t name_seed = HashName(name) ^ seed;
    return w.AddTensor(name, type, dims, [=](std::span<uint8_t> out) {
      FromFloatFn from = FromFloatFor(type);
      if (*pool == nullptr) *pool = std::make_unique<ThreadPool>(threads);
      (*pool)->ParallelFor(static_cast<size_t>(rows), [&](size_t b, size_t e) {
        std::vector<float> row(static_cast<size_t>(cols));
        for (size_t r = b; r < e; ++r) {
          if (matrix) RandomRow(name_seed + r * 0x9E3779B97F4A7C15ull, 0.02f, row.data(), cols);
          else std::fill(row.begin(), row.end(), 1.0f);  // norms
          from(row.data(), out.data() + r * row_bytes, cols, nullptr);
        }
      }, 1);
      return OkStatus();
    });
  };
  const int64_t E = sh->n_embd, kv = sh->n_head_kv * (E / sh->n_head);
  LOWBIT_RETURN_IF_ERROR(add("token_embd.weight", sh->n_vocab, E));
  LOWBIT_RETURN_IF_ERROR(add("output_norm.weight", 1, E));
  if (!sh->tied) LOWBIT_RETURN_IF_ERROR(add("output.weight", sh->n_vocab, E));
  for (int64_t l = 0; l < sh->n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    LOWBIT_RETURN_IF_ERROR(add(p + "attn_q.weight", E, E));
    LOWBIT_RETURN_IF_ERROR(add(p + "attn_k.weight", kv, E));
    LOWBIT_RETURN_IF_ERROR(add(p + "attn_v.weight", kv, E));
    LOWBIT_RETURN_IF_ERROR(add(p + "attn_output.weight", E, E));
    LOWBIT_RETURN_IF_ERROR(add(p + "attn_norm.weight", 1, E));
    LOWBIT_RETURN_IF_ERROR(add(p + "ffn_gate.weight", sh->n_ff, E));
    LOWBIT_RETURN_IF_ERROR(add(p + "ffn_down.weight", E, sh->n_ff));
    LOWBIT_RETURN_IF_ERROR(add(p + "ffn_up.weight", sh->n_ff, E));
    LOWBIT_RETURN_IF_ERROR(add(p + "ffn_norm.weight", 1, E));
  }
  return w;
}

Expected<uint64_t> Synthesize(const SynthOptions& o) {
  LOWBIT_ASSIGN_OR_RETURN(GgufWriter w, SynthWriter(o));
  LOWBIT_RETURN_IF_ERROR(w.Write(o.output, o.show_progress));
  return w.FileSize();
}

}  // namespace lowbit

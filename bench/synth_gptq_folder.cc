// Writes a GPTQ folder (config.json with quantization_config, quantize_config.json,
// model.safetensors) of a chosen Llama shape with deterministic pseudo-random codes, fp16 scales
// and zero points, for speed measurements of `lowbit bench -m DIR` beside the ggml types of the same
// shape (bench/gptq_folder_bench.sh). No tokenizer: bench needs none.
// Usage: lowbit_synth_gptq_folder OUT_DIR dim hidden_dim n_layers n_heads n_kv_heads vocab seq_len
//        [bits=4] [group=128] [sym=1] [act_order=0] [lm_head=1]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <string>

#include <fmt/format.h>

#include "lowbit/formats/quant_checkpoint.h"
#include "lowbit/numeric/half.h"
#include "synth_folder_common.h"

namespace {

using namespace lowbit;

IntQuantLinear RandomLayer(int64_t rows, int64_t cols, int bits, int64_t group, bool sym, bool act_order, uint64_t seed) {
  std::mt19937_64 rng(seed);
  IntQuantLinear q;
  q.bits = bits;
  q.rows = rows;
  q.cols = cols;
  q.group_size = group;
  q.codes.resize(static_cast<size_t>(rows * cols));
  for (auto& c : q.codes) c = static_cast<uint8_t>(rng() & ((1u << bits) - 1));
  const int64_t ng = q.n_groups();
  q.scales.resize(static_cast<size_t>(ng * rows));
  q.zeros.resize(static_cast<size_t>(ng * rows));
  for (auto& s : q.scales) s = Fp16ToFp32(Fp32ToFp16(0.001f + 0.002f * static_cast<float>(rng() % 1000) / 1000.0f));
  for (auto& z : q.zeros) z = sym ? 1 << (bits - 1) : static_cast<int32_t>(rng() % (1u << bits));
  q.g_idx = MonotoneGIdx(cols, group);
  if (act_order) std::shuffle(q.g_idx.begin(), q.g_idx.end(), rng);
  return q;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 9) {
    std::fprintf(stderr,
                 "usage: %s OUT_DIR dim hidden_dim n_layers n_heads n_kv_heads vocab seq_len [bits=4] [group=128] [sym=1] "
                 "[act_order=0] [lm_head=1]\n", argv[0]);
    return 2;
  }
  const std::string out = argv[1];
  const int64_t dim = std::atoll(argv[2]), hid = std::atoll(argv[3]), L = std::atoll(argv[4]), H = std::atoll(argv[5]),
                KV = std::atoll(argv[6]), V = std::atoll(argv[7]), seq = std::atoll(argv[8]);
  const int bits = argc > 9 ? std::atoi(argv[9]) : 4;
  const int64_t group = argc > 10 ? std::atoll(argv[10]) : 128;
  const bool sym = argc > 11 ? std::atoi(argv[11]) != 0 : true;
  const bool act = argc > 12 ? std::atoi(argv[12]) != 0 : false;
  const bool lm_head = argc > 13 ? std::atoi(argv[13]) != 0 : true;
  const int64_t kv = dim / H * KV;
  QuantConfig cfg;
  cfg.method = QuantMethod::kGptq;
  cfg.format = CheckpointFormat::kGptqV2;
  cfg.bits = bits;
  cfg.group_size = group;
  cfg.sym = sym;
  cfg.desc_act = act;
  cfg.lm_head = lm_head;
  SafetensorsWriter w;
  w.SetMetadata("format", "pt");
  const auto fail = bench::Fail;
  auto add_float = [&](const std::string& name, std::vector<uint64_t> shape, float amp, uint64_t seed) {
    return bench::AddRandomF16(w, name, std::move(shape), amp, seed);
  };
  uint64_t seed = 1;
  if (Status s = add_float("model.embed_tokens.weight", {uint64_t(V), uint64_t(dim)}, 0.02f, seed++); !s.ok()) return fail(s);
  if (Status s = add_float("model.norm.weight", {uint64_t(dim)}, 0, seed++); !s.ok()) return fail(s);
  auto add_q = [&](const std::string& prefix, int64_t rows, int64_t cols) {
    return AddQuantizedLinear(w, prefix, RandomLayer(rows, cols, bits, group, sym, act, seed++), cfg);
  };
  if (lm_head) {
    if (Status s = add_q("lm_head", V, dim); !s.ok()) return fail(s);
  } else if (Status s = add_float("lm_head.weight", {uint64_t(V), uint64_t(dim)}, 0.02f, seed++); !s.ok()) {
    return fail(s);
  }
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    for (auto [name, rows, cols] : {std::tuple{"self_attn.q_proj", dim, dim}, {"self_attn.k_proj", kv, dim},
                                    {"self_attn.v_proj", kv, dim}, {"self_attn.o_proj", dim, dim},
                                    {"mlp.gate_proj", hid, dim}, {"mlp.up_proj", hid, dim}, {"mlp.down_proj", dim, hid}}) {
      if (Status s = add_q(p + name, rows, cols); !s.ok()) return fail(s);
    }
    if (Status s = add_float(p + "input_layernorm.weight", {uint64_t(dim)}, 0, seed++); !s.ok()) return fail(s);
    if (Status s = add_float(p + "post_attention_layernorm.weight", {uint64_t(dim)}, 0, seed++); !s.ok()) return fail(s);
  }
  std::filesystem::create_directories(out);
  if (Status s = w.Write(out + "/model.safetensors"); !s.ok()) return fail(s);
  const std::string config = fmt::format(
      R"({{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": {}, "hidden_size": {},
  "intermediate_size": {}, "num_hidden_layers": {}, "num_attention_heads": {}, "num_key_value_heads": {},
  "max_position_embeddings": {}, "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "tie_word_embeddings": false,
  "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float16"}})", V, dim, hid, L, H, KV, seq);
  auto with = WithQuantizationConfig(config, cfg, "config.json");
  if (!with.ok()) return fail(with.status());
  std::ofstream(out + "/config.json") << *with;
  std::ofstream(out + "/quantize_config.json") << GptqQuantizeConfigJson(cfg);
  std::printf("wrote %s\n", out.c_str());
  return 0;
}

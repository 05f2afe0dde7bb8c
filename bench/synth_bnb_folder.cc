// Writes a bitsandbytes folder (config.json with its quantization_config, model.safetensors) of a
// chosen Llama shape with deterministic pseudo-random codes and scales, for speed measurements of
// `lowbit bench -m DIR` beside the ggml types of the same shape (bench/issue20_bnb.sh). The embedding
// and lm_head stay F16 (transformers' default skip list keeps lm_head in float). No tokenizer.
// Usage: lowbit_synth_bnb_folder OUT_DIR dim hidden_dim n_layers n_heads n_kv_heads vocab seq_len
//        [method=nf4|fp4|int8] [double_quant=1] [block=64]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include <fmt/format.h>

#include "lowbit/formats/bnb_checkpoint.h"
#include "lowbit/numeric/half.h"
#include "lowbit/quant/bnb_quant.h"
#include "synth_folder_common.h"

namespace {

using namespace lowbit;

std::vector<PackedTensor> RandomLinear(const std::string& prefix, int64_t rows, int64_t cols, const std::string& method, bool dq,
                                       int64_t block, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int64_t n = rows * cols;
  if (method == "int8") {
    std::vector<uint8_t> q(static_cast<size_t>(n));
    for (auto& b : q) b = static_cast<uint8_t>(rng());
    std::vector<float> scb(static_cast<size_t>(rows));
    for (auto& s : scb) s = 0.05f + 0.05f * static_cast<float>(rng() % 1000) / 1000.0f;
    return Bnb8LinearTensors(prefix, rows, cols, std::move(q), scb);
  }
  std::vector<uint8_t> packed(static_cast<size_t>((n + 1) / 2));
  for (auto& b : packed) b = static_cast<uint8_t>(rng());
  std::vector<float> absmax(static_cast<size_t>(BnbBlockCount(n, block)));
  for (auto& a : absmax) a = 0.01f + 0.02f * static_cast<float>(rng() % 1000) / 1000.0f;
  Bnb4State st;
  st.type = method == "fp4" ? Bnb4Type::kFp4 : Bnb4Type::kNf4;
  st.blocksize = block;
  st.dtype = "float16";
  st.shape = {rows, cols};
  if (!dq) return Bnb4LinearTensors(prefix, st, std::move(packed), absmax, nullptr);
  BnbNestedAbsmax d = DoubleQuantizeAbsmax(absmax);
  st.nested = true;
  st.nested_offset = d.offset;
  Bnb4Nested nested{std::move(d.q), std::move(d.nested_absmax)};
  return Bnb4LinearTensors(prefix, st, std::move(packed), absmax, &nested);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 9) {
    std::fprintf(stderr, "usage: %s OUT_DIR dim hidden_dim n_layers n_heads n_kv_heads vocab seq_len [method=nf4|fp4|int8] "
                         "[double_quant=1] [block=64]\n", argv[0]);
    return 2;
  }
  const std::string out = argv[1];
  const int64_t dim = std::atoll(argv[2]), hid = std::atoll(argv[3]), L = std::atoll(argv[4]), H = std::atoll(argv[5]),
                KV = std::atoll(argv[6]), V = std::atoll(argv[7]), seq = std::atoll(argv[8]);
  const std::string method = argc > 9 ? argv[9] : "nf4";
  const bool dq = argc > 10 ? std::atoi(argv[10]) != 0 : true;
  const int64_t block = argc > 11 ? std::atoll(argv[11]) : 64;
  const int64_t kv = dim / H * KV;
  SafetensorsWriter w;
  w.SetMetadata("format", "pt");
  const auto fail = bench::Fail;
  auto add_float = [&](const std::string& name, std::vector<uint64_t> shape, float amp, uint64_t seed) {
    return bench::AddRandomF16(w, name, std::move(shape), amp, seed);
  };
  uint64_t seed = 1;
  if (Status s = add_float("model.embed_tokens.weight", {uint64_t(V), uint64_t(dim)}, 0.02f, seed++); !s.ok()) return fail(s);
  if (Status s = add_float("model.norm.weight", {uint64_t(dim)}, 0, seed++); !s.ok()) return fail(s);
  if (Status s = add_float("lm_head.weight", {uint64_t(V), uint64_t(dim)}, 0.02f, seed++); !s.ok()) return fail(s);
  std::vector<std::shared_ptr<std::vector<PackedTensor>>> keep;
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    for (auto [name, rows, cols] : {std::tuple{"self_attn.q_proj", dim, dim}, {"self_attn.k_proj", kv, dim},
                                    {"self_attn.v_proj", kv, dim}, {"self_attn.o_proj", dim, dim},
                                    {"mlp.gate_proj", hid, dim}, {"mlp.up_proj", hid, dim}, {"mlp.down_proj", dim, hid}}) {
      auto ts = std::make_shared<std::vector<PackedTensor>>(RandomLinear(p + name, rows, cols, method, dq, block, seed++));
      keep.push_back(ts);
      for (const PackedTensor& t : *ts) {
        if (Status s = w.Add(t.name, t.dtype, t.shape, [&t](std::span<uint8_t> o) {
              std::memcpy(o.data(), t.bytes.data(), o.size());
              return OkStatus();
            });
            !s.ok()) {
          return fail(s);
        }
      }
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
  BnbConfig bc;
  bc.load_in_4bit = method != "int8";
  bc.load_in_8bit = method == "int8";
  bc.quant_type = method == "fp4" ? Bnb4Type::kFp4 : Bnb4Type::kNf4;
  bc.double_quant = dq && method != "int8";
  auto with = WithBnbQuantizationConfig(config, bc, "config.json");
  if (!with.ok()) return fail(with.status());
  std::ofstream(out + "/config.json") << *with;
  std::printf("wrote %s\n", out.c_str());
  return 0;
}

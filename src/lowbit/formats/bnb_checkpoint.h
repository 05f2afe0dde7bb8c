// bitsandbytes checkpoints as transformers saves them (../shared/FORMATS.md B4): the
// quantization_config of config.json, and the tensors of one quantized Linear.
//
// 4-bit (Linear4bit) at prefix P:
//   P.weight                                  U8 [(n + 1) / 2, 1]: two codes per byte, first element high
//   P.weight.absmax                           F32 [blocks], or U8 [blocks] with double quantization
//   P.weight.quant_map                        F32 [16]: the code book (must be NF4's or FP4's)
//   P.weight.nested_absmax                    F32 [ceil(blocks / nested_blocksize)]   (double quant)
//   P.weight.nested_quant_map                 F32 [256]                               (double quant)
//   P.weight.quant_state.bitsandbytes__nf4    U8: UTF-8 JSON {"quant_type", "blocksize", "dtype",
//                                             "shape", and with double quant "nested_blocksize",
//                                             "nested_dtype", "nested_offset"} (or __fp4)
// 8-bit (Linear8bitLt): P.weight I8 [out, in], P.SCB F32 [out], P.weight_format U8 scalar 0 ("row").
//
// Readers check every tensor against the quant state, the config and the layer's shape and fail with
// one line naming the tensor and the field; nothing is allocated beyond the layer's absmax values.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/formats/quant_checkpoint.h"
#include "lowbit/numeric/bnb.h"

namespace lowbit {

// config.json "quantization_config" with quant_method "bitsandbytes" (transformers' BitsAndBytesConfig).
struct BnbConfig {
  bool load_in_4bit = false, load_in_8bit = false;
  Bnb4Type quant_type = Bnb4Type::kNf4;     // bnb_4bit_quant_type
  bool double_quant = false;                // bnb_4bit_use_double_quant
  std::string compute_dtype = "float32";    // bnb_4bit_compute_dtype
  std::string quant_storage = "uint8";      // bnb_4bit_quant_storage (lowbit reads uint8 only)
  double int8_threshold = 6.0;              // llm_int8_threshold
  std::vector<std::string> skip_modules;    // llm_int8_skip_modules
  bool has_fp16_weight = false;             // llm_int8_has_fp16_weight
};

// Whether a config.json text declares a bitsandbytes quantization (quant_method "bitsandbytes", or
// load_in_4bit / load_in_8bit without a quant_method, as older transformers wrote it).
bool DeclaresBnbQuantization(std::string_view config_json);
// Parses config.json's quantization_config (or the object itself); errors name `name` and the field.
Expected<BnbConfig> ParseBnbConfig(std::string_view json, const std::string& name);
// The object transformers writes (BitsAndBytesConfig.to_dict, keys sorted as its JSON dump sorts them).
std::string BnbQuantizationConfigJson(const BnbConfig& c);
// `config_json` with "quantization_config" set to the object above; other keys keep their order.
Expected<std::string> WithBnbQuantizationConfig(std::string_view config_json, const BnbConfig& c, const std::string& name);

// The non-tensor fields of a 4-bit QuantState.
struct Bnb4State {
  Bnb4Type type = Bnb4Type::kNf4;
  int64_t blocksize = 64;
  std::string dtype = "float32";
  std::vector<int64_t> shape;
  bool nested = false;
  int64_t nested_blocksize = 256;
  std::string nested_dtype = "float32";
  float nested_offset = 0.0f;
};
Expected<Bnb4State> ParseBnb4State(std::string_view json, const std::string& where);
// json.dumps of the dict bitsandbytes packs (its key order, ", " and ": " separators).
std::string Bnb4StateJson(const Bnb4State& s);
// "P.weight.quant_state.bitsandbytes__nf4" for prefix P.
std::string Bnb4StateTensorName(const std::string& prefix, Bnb4Type t);

// Whether `prefix` is a 4-bit (a quant-state tensor exists) or an 8-bit (P.SCB exists) linear.
bool HasBnb4Linear(const TensorSet& ts, const std::string& prefix);
bool HasBnb8Linear(const TensorSet& ts, const std::string& prefix);

// The quant state of 4-bit linear `prefix`, checked against its tensor's name (nf4 / fp4) and dtype.
Expected<Bnb4State> ReadBnb4State(const TensorSet& ts, const std::string& prefix);

struct Bnb4Linear {
  Bnb4State state;
  int64_t rows = 0, cols = 0;
  std::span<const uint8_t> packed;  // (rows * cols + 1) / 2 bytes, into the file
  std::vector<float> absmax;        // one per block, double quantization decoded
};
// Reads module `prefix` (e.g. "model.layers.0.mlp.up_proj") of shape [rows, cols].
Expected<Bnb4Linear> ReadBnb4Linear(const TensorSet& ts, const std::string& prefix, int64_t rows, int64_t cols);

struct Bnb8Linear {
  int64_t rows = 0, cols = 0;
  std::span<const uint8_t> q;  // int8 [rows][cols], into the file
  std::vector<float> scb;      // per row
};
Expected<Bnb8Linear> ReadBnb8Linear(const TensorSet& ts, const std::string& prefix, int64_t rows, int64_t cols);

// The tensors of a 4-bit linear: `absmax` per block, or with `nested` the double-quantized form
// (codes, nested absmax per nested block; the offset and block size travel in `state`).
struct Bnb4Nested {
  std::vector<uint8_t> q;
  std::vector<float> nested_absmax;
};
std::vector<PackedTensor> Bnb4LinearTensors(const std::string& prefix, const Bnb4State& state, std::vector<uint8_t> packed,
                                            const std::vector<float>& absmax, const Bnb4Nested* nested);
std::vector<PackedTensor> Bnb8LinearTensors(const std::string& prefix, int64_t rows, int64_t cols, std::vector<uint8_t> q,
                                            const std::vector<float>& scb);

}  // namespace lowbit

// Quantization mixes: which type each tensor of a model gets for a requested TYPE.
//
// TYPE is either a tensor type (Q4_K: every quantizable tensor gets it) or a mix in llama.cpp's
// sense (Q4_K_M, Q3_K_S, Q2_K, Q6_K, Q4_0, IQ4_XS, ...): a base type plus rules that give more bits
// to the tensors that matter most. The rules are llama.cpp's (llama-quant.cpp) for the tensor
// names they know, written out in docs/QUANTIZATION.md; tensors with other names get the base type.
// Shapes a block type cannot cover (row length not a multiple of 256 or 32) fall back per tensor to
// a compatible type, as llama.cpp does; --pure disables the mix rules but not the fallback.
#pragma once

#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/numeric/ggml_type.h"

namespace lowbit {

struct QuantMix {
  std::string name;        // "Q4_K_M", or the tensor type name for a pure type
  GgmlType base;           // default tensor type
  uint32_t file_type;      // llama_ftype written to general.file_type
  bool is_mix;             // false: a plain tensor type
};

// Resolves a TYPE argument (case-insensitive). Errors list the accepted names.
Expected<QuantMix> ResolveQuantMix(std::string_view name);
// Every accepted mix name, for help text.
std::vector<std::string> QuantMixNames();
// The mix name of a `general.file_type` value (llama_ftype: 15 -> "Q4_K_M"); empty when unknown.
std::string FileTypeName(uint32_t file_type);

struct MixContext {
  int n_layers = 0;            // number of attn_v / ffn_down tensors in the model
  int n_head = 1, n_head_kv = 1;
  bool has_imatrix = false;
  bool pure = false;
  std::optional<GgmlType> output_type, token_embedding_type;
  std::vector<std::pair<std::regex, GgmlType>> overrides;  // --tensor-type REGEX=TYPE, first match wins
};

// Chooses the type of one 2-D tensor. `i_attn_v` / `i_ffn_down` count earlier tensors of that kind
// (llama.cpp's ordering rule); `fallback_note` says why a fallback happened, if it did.
GgmlType ChooseTensorType(const QuantMix& mix, const MixContext& ctx, const std::string& name,
                          uint64_t row_length, int i_attn_v, int i_ffn_down, std::string* fallback_note);

// The compatible type for a row length a block type cannot cover (llama.cpp's fallback table).
GgmlType FallbackType(GgmlType t, uint64_t row_length);

}  // namespace lowbit

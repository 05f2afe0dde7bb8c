#include "lowbit/pipeline/quant_mix.h"

#include <cctype>

#include <fmt/format.h>

namespace lowbit {
namespace {

struct MixRow {
  const char* name;
  GgmlType base;
  uint32_t file_type;  // llama_ftype
};

// llama_ftype values from llama.h.
constexpr MixRow kMixes[] = {
    {"F32", GgmlType::kF32, 0},        {"F16", GgmlType::kF16, 1},       {"BF16", GgmlType::kBF16, 32},
    {"Q4_0", GgmlType::kQ4_0, 2},      {"Q4_1", GgmlType::kQ4_1, 3},     {"Q5_0", GgmlType::kQ5_0, 8},
    {"Q5_1", GgmlType::kQ5_1, 9},      {"Q8_0", GgmlType::kQ8_0, 7},     {"Q2_K", GgmlType::kQ2_K, 10},
    {"Q2_K_S", GgmlType::kQ2_K, 21},   {"Q3_K_S", GgmlType::kQ3_K, 11},  {"Q3_K_M", GgmlType::kQ3_K, 12},
    {"Q3_K_L", GgmlType::kQ3_K, 13},   {"Q4_K_S", GgmlType::kQ4_K, 14},  {"Q4_K_M", GgmlType::kQ4_K, 15},
    {"Q5_K_S", GgmlType::kQ5_K, 16},   {"Q5_K_M", GgmlType::kQ5_K, 17},  {"Q6_K", GgmlType::kQ6_K, 18},
    {"IQ4_NL", GgmlType::kIQ4_NL, 25}, {"IQ4_XS", GgmlType::kIQ4_XS, 30}, {"TQ1_0", GgmlType::kTQ1_0, 36},
    {"TQ2_0", GgmlType::kTQ2_0, 37},
};

// Pure tensor types that are not also mix names, with the file type llama.cpp aliases them to.
constexpr MixRow kPure[] = {
    {"Q3_K", GgmlType::kQ3_K, 12}, {"Q4_K", GgmlType::kQ4_K, 15}, {"Q5_K", GgmlType::kQ5_K, 17},
};

std::string Upper(std::string_view s) {
  std::string u(s);
  for (char& c : u) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return u;
}

bool IsKQuant(GgmlType t) {
  switch (t) {
    case GgmlType::kQ2_K: case GgmlType::kQ3_K: case GgmlType::kQ4_K: case GgmlType::kQ5_K:
    case GgmlType::kQ6_K: case GgmlType::kIQ4_XS: case GgmlType::kIQ2_XS: case GgmlType::kIQ2_XXS:
    case GgmlType::kIQ2_S: case GgmlType::kIQ3_XXS: case GgmlType::kIQ1_S: case GgmlType::kIQ1_M:
    case GgmlType::kIQ3_S: case GgmlType::kTQ1_0: case GgmlType::kTQ2_0:
      return true;
    default:
      return false;
  }
}

// llama.cpp's use_more_bits: first and last eighth of the layers, and every third in between.
bool UseMoreBits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

bool Contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

}  // namespace

Expected<QuantMix> ResolveQuantMix(std::string_view name) {
  const std::string u = Upper(name);
  for (const MixRow& r : kMixes) {
    // As llama.cpp: the mix rules apply only when the base type is a quantized one.
    if (u == r.name) return QuantMix{r.name, r.base, r.file_type, TypeInfo(r.base).quantized};
  }
  for (const MixRow& r : kPure) {
    if (u == r.name) return QuantMix{r.name, r.base, r.file_type, false};
  }
  const GgmlTypeInfo* t = FindGgmlTypeByName(u);
  if (t != nullptr) {
    return Errorf("type {} cannot be written by lowbit yet (it reads and runs it); choose one of: {}", t->name,
                  fmt::join(QuantMixNames(), " "));
  }
  return Errorf("unknown type '{}'; choose one of: {}", name, fmt::join(QuantMixNames(), " "));
}

std::vector<std::string> QuantMixNames() {
  std::vector<std::string> v;
  for (const MixRow& r : kMixes) v.emplace_back(r.name);
  for (const MixRow& r : kPure) v.emplace_back(r.name);
  return v;
}

std::string FileTypeName(uint32_t file_type) {
  for (const MixRow& r : kMixes) {
    if (r.file_type == file_type) return r.name;
  }
  return "";
}

GgmlType FallbackType(GgmlType t, uint64_t row_length) {
  GgmlType f = t;
  if (IsKQuant(t) && row_length % 256 != 0) {
    switch (t) {
      case GgmlType::kTQ1_0: case GgmlType::kTQ2_0: f = GgmlType::kQ4_0; break;
      case GgmlType::kQ4_K: f = GgmlType::kQ5_0; break;
      case GgmlType::kQ5_K: f = GgmlType::kQ5_1; break;
      case GgmlType::kQ6_K: f = GgmlType::kQ8_0; break;
      default: f = GgmlType::kIQ4_NL; break;  // Q2_K, Q3_K, IQ4_XS and the IQ lattice types
    }
  }
  if (row_length % TypeInfo(f).block_size != 0) f = GgmlType::kF16;
  return f;
}

GgmlType ChooseTensorType(const QuantMix& mix, const MixContext& ctx, const std::string& name,
                          uint64_t row_length, int i_attn_v, int i_ffn_down, std::string* note) {
  using T = GgmlType;
  T t = mix.base;
  const std::string& m = mix.name;
  const int n = ctx.n_layers;
  const int n_gqa = ctx.n_head_kv > 0 ? ctx.n_head / ctx.n_head_kv : 1;
  bool overridden = false;
  for (const auto& [re, type] : ctx.overrides) {
    if (std::regex_search(name, re)) {
      t = type;
      overridden = true;
      break;
    }
  }
  if (!overridden && name == "output.weight" && ctx.output_type) {
    t = *ctx.output_type;
    overridden = true;
  }
  if (!overridden && name == "token_embd.weight" && ctx.token_embedding_type) {
    t = *ctx.token_embedding_type;
    overridden = true;
  }
  if (!overridden && !ctx.pure && mix.is_mix) {
    if (name == "output.weight") {
      if (row_length % 256 != 0) t = T::kQ8_0;
      else if (t != T::kQ8_0) t = T::kQ6_K;
    } else if (name == "token_embd.weight") {
      if (m == "TQ1_0" || m == "TQ2_0") t = T::kQ4_K;
    } else if (Contains(name, "attn_v.weight")) {
      if (m == "Q2_K") t = n_gqa >= 4 ? T::kQ4_K : T::kQ3_K;
      else if (m == "Q2_K_S" && n_gqa >= 4) t = T::kQ4_K;
      else if (m == "Q3_K_M") t = i_attn_v < 2 ? T::kQ5_K : T::kQ4_K;
      else if (m == "Q3_K_L") t = T::kQ5_K;
      else if ((m == "IQ4_NL" || m == "IQ4_XS") && n_gqa >= 4) t = T::kQ5_K;
      else if ((m == "Q4_K_M" || m == "Q5_K_M") && UseMoreBits(i_attn_v, n)) t = T::kQ6_K;
      else if (m == "Q4_K_S" && i_attn_v < 4) t = T::kQ5_K;
    } else if (Contains(name, "ffn_down")) {
      const int i = i_ffn_down;
      if (m == "Q2_K") t = T::kQ3_K;
      else if (m == "Q2_K_S") { if (i < n / 8) t = T::kQ4_K; }
      else if (m == "Q3_K_M") t = i < n / 16 ? T::kQ5_K : T::kQ4_K;
      else if (m == "Q3_K_L") t = T::kQ5_K;
      else if (m == "Q4_K_M") { if (UseMoreBits(i, n)) t = T::kQ6_K; }
      else if (i < n / 8 && (m == "IQ4_NL" || m == "IQ4_XS") && !ctx.has_imatrix) t = T::kQ5_K;
      else if (m == "Q5_K_M" && UseMoreBits(i, n)) t = T::kQ6_K;
      else if (m == "Q4_K_S" && i < n / 8) t = T::kQ5_K;
      else if ((m == "Q4_0" || m == "Q5_0") && ctx.has_imatrix && i < n / 8) t = m == "Q4_0" ? T::kQ4_1 : T::kQ5_1;
    } else if (Contains(name, "attn_output.weight")) {
      if (m == "Q2_K") t = T::kQ3_K;
      else if (m == "Q3_K_M") t = T::kQ4_K;
      else if (m == "Q3_K_L") t = T::kQ5_K;
    }
  }
  const T f = FallbackType(t, row_length);
  if (f != t && note != nullptr) {
    *note = fmt::format("row length {} does not fit {}: using {}", row_length, TypeInfo(t).name, TypeInfo(f).name);
  }
  return f;
}

}  // namespace lowbit

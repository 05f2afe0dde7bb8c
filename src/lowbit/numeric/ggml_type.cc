#include "lowbit/numeric/ggml_type.h"

#include <algorithm>
#include <array>
#include <cctype>

namespace lowbit {
namespace {

// Sizes follow the block structs of ggml-common.h (see ../shared/FORMATS.md); the structs lowbit
// computes with carry static_asserts against these numbers in numeric/blocks.h.
constexpr std::array<GgmlTypeInfo, 60> kTypes = {{
    {GgmlType::kF32, "F32", 1, 4, false},
    {GgmlType::kF16, "F16", 1, 2, false},
    {GgmlType::kQ4_0, "Q4_0", 32, 18, true},
    {GgmlType::kQ4_1, "Q4_1", 32, 20, true},
    {GgmlType::kQ5_0, "Q5_0", 32, 22, true},
    {GgmlType::kQ5_1, "Q5_1", 32, 24, true},
    {GgmlType::kQ8_0, "Q8_0", 32, 34, true},
    {GgmlType::kQ8_1, "Q8_1", 32, 36, true},
    {GgmlType::kQ2_K, "Q2_K", 256, 84, true},
    {GgmlType::kQ3_K, "Q3_K", 256, 110, true},
    {GgmlType::kQ4_K, "Q4_K", 256, 144, true},
    {GgmlType::kQ5_K, "Q5_K", 256, 176, true},
    {GgmlType::kQ6_K, "Q6_K", 256, 210, true},
    {GgmlType::kQ8_K, "Q8_K", 256, 292, true},
    {GgmlType::kIQ2_XXS, "IQ2_XXS", 256, 66, true},
    {GgmlType::kIQ2_XS, "IQ2_XS", 256, 74, true},
    {GgmlType::kIQ3_XXS, "IQ3_XXS", 256, 98, true},
    {GgmlType::kIQ1_S, "IQ1_S", 256, 50, true},
    {GgmlType::kIQ4_NL, "IQ4_NL", 32, 18, true},
    {GgmlType::kIQ3_S, "IQ3_S", 256, 110, true},
    {GgmlType::kIQ2_S, "IQ2_S", 256, 82, true},
    {GgmlType::kIQ4_XS, "IQ4_XS", 256, 136, true},
    {GgmlType::kI8, "I8", 1, 1, false},
    {GgmlType::kI16, "I16", 1, 2, false},
    {GgmlType::kI32, "I32", 1, 4, false},
    {GgmlType::kI64, "I64", 1, 8, false},
    {GgmlType::kF64, "F64", 1, 8, false},
    {GgmlType::kIQ1_M, "IQ1_M", 256, 56, true},
    {GgmlType::kBF16, "BF16", 1, 2, false},
    {GgmlType::kTQ1_0, "TQ1_0", 256, 54, true},
    {GgmlType::kTQ2_0, "TQ2_0", 256, 66, true},
    {GgmlType::kMXFP4, "MXFP4", 32, 17, true},
    {GgmlType::kNVFP4, "NVFP4", 64, 36, true},
    {GgmlType::kQ1_0, "Q1_0", 128, 18, true},
    {GgmlType::kQ2_0, "Q2_0", 64, 18, true},
    // Internal: a block is one group of G columns of a row, fp16 d, int16 z, G 4- or 8-bit codes.
    {GgmlType::kW4G32, "W4G32", 32, 4 + 16, true, true},
    {GgmlType::kW4G64, "W4G64", 64, 4 + 32, true, true},
    {GgmlType::kW4G128, "W4G128", 128, 4 + 64, true, true},
    {GgmlType::kW8G32, "W8G32", 32, 4 + 32, true, true},
    {GgmlType::kW8G64, "W8G64", 64, 4 + 64, true, true},
    {GgmlType::kW8G128, "W8G128", 128, 4 + 128, true, true},
    // Internal: bitsandbytes 4-bit, fp32 absmax then G codes (numeric/bnb.h).
    {GgmlType::kNF4G32, "NF4G32", 32, 4 + 16, true, true},
    {GgmlType::kNF4G64, "NF4G64", 64, 4 + 32, true, true},
    {GgmlType::kFP4G32, "FP4G32", 32, 4 + 16, true, true},
    {GgmlType::kFP4G64, "FP4G64", 64, 4 + 32, true, true},
    // Internal: two bitsandbytes 4-bit blocks of 64, both fp32 absmaxes then 128 codes (numeric/bnb.h).
    {GgmlType::kNF4G64x2, "NF4G64x2", 128, 8 + 64, true, true},
    {GgmlType::kFP4G64x2, "FP4G64x2", 128, 8 + 64, true, true},
    // Internal: LLM.int8, the row's fp32 SCB then G int8 codes (numeric/bnb.h).
    {GgmlType::kI8R32, "I8R32", 32, 4 + 32, true, true},
    {GgmlType::kI8R256, "I8R256", 256, 4 + 256, true, true},
    // Internal: 8 rows interleaved (numeric/interleave.h), per super-block or, for the 32-element
    // types, per 4 blocks; a row's share of a group is its blocks.
    {GgmlType::kQ4_KX8, "Q4_Kx8", 256, 144, true, true},
    {GgmlType::kQ5_KX8, "Q5_Kx8", 256, 176, true, true},
    {GgmlType::kQ4_0X8, "Q4_0x8", 32, 18, true, true},
    {GgmlType::kQ4_1X8, "Q4_1x8", 32, 20, true, true},
    {GgmlType::kQ5_0X8, "Q5_0x8", 32, 22, true, true},
    {GgmlType::kQ5_1X8, "Q5_1x8", 32, 24, true, true},
    {GgmlType::kIQ4_NLX8, "IQ4_NLx8", 32, 18, true, true},
    {GgmlType::kQ2_KX8, "Q2_Kx8", 256, 84, true, true},
    {GgmlType::kQ3_KX8, "Q3_Kx8", 256, 110, true, true},
    {GgmlType::kIQ4_XSX8, "IQ4_XSx8", 256, 136, true, true},
    {GgmlType::kQ6_KX8, "Q6_Kx8", 256, 210, true, true},
}};

constexpr uint32_t kMaxId = kTypeIdLimit - 1;

constexpr std::array<const GgmlTypeInfo*, kMaxId + 1> BuildIndex() {
  std::array<const GgmlTypeInfo*, kMaxId + 1> idx{};
  for (const auto& t : kTypes) idx[static_cast<uint32_t>(t.type)] = &t;
  return idx;
}
constexpr auto kIndex = BuildIndex();

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

}  // namespace

std::span<const GgmlTypeInfo> AllGgmlTypes() { return kTypes; }

const GgmlTypeInfo* FindGgmlType(uint32_t id) { return id <= kMaxId ? kIndex[id] : nullptr; }

const GgmlTypeInfo* FindGgmlTypeByName(std::string_view name, bool include_internal) {
  for (const auto& t : kTypes) {
    if (EqualsIgnoreCase(t.name, name) && (include_internal || !t.internal)) return &t;
  }
  return nullptr;
}

std::string_view RemovedGgmlTypeName(uint32_t id) {
  switch (id) {
    case 4: return "Q4_2";
    case 5: return "Q4_3";
    case 31: return "Q4_0_4_4";
    case 32: return "Q4_0_4_8";
    case 33: return "Q4_0_8_8";
    case 36: return "IQ4_NL_4_4";
    case 37: return "IQ4_NL_4_8";
    case 38: return "IQ4_NL_8_8";
    default: return {};
  }
}

std::optional<uint64_t> RowBytes(GgmlType t, uint64_t n) {
  const GgmlTypeInfo& info = TypeInfo(t);
  if (n % info.block_size != 0) return std::nullopt;
  return n / info.block_size * info.block_bytes;
}

}  // namespace lowbit

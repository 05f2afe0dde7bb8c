#include <gtest/gtest.h>

#include "lowbit/numeric/ggml_type.h"

namespace lowbit {
namespace {

TEST(GgmlType, TableMatchesGgmlSizes) {
  struct Want { uint32_t id; const char* name; uint32_t block, bytes; };
  // Block sizes and bytes per block from ggml-common.h (../shared/FORMATS.md B1).
  const Want want[] = {
      {0, "F32", 1, 4},        {1, "F16", 1, 2},         {2, "Q4_0", 32, 18},     {3, "Q4_1", 32, 20},
      {6, "Q5_0", 32, 22},     {7, "Q5_1", 32, 24},      {8, "Q8_0", 32, 34},     {9, "Q8_1", 32, 36},
      {10, "Q2_K", 256, 84},   {11, "Q3_K", 256, 110},   {12, "Q4_K", 256, 144},  {13, "Q5_K", 256, 176},
      {14, "Q6_K", 256, 210},  {15, "Q8_K", 256, 292},   {16, "IQ2_XXS", 256, 66}, {17, "IQ2_XS", 256, 74},
      {18, "IQ3_XXS", 256, 98}, {19, "IQ1_S", 256, 50},  {20, "IQ4_NL", 32, 18},  {21, "IQ3_S", 256, 110},
      {22, "IQ2_S", 256, 82},  {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},        {25, "I16", 1, 2},
      {26, "I32", 1, 4},       {27, "I64", 1, 8},        {28, "F64", 1, 8},       {29, "IQ1_M", 256, 56},
      {30, "BF16", 1, 2},      {34, "TQ1_0", 256, 54},   {35, "TQ2_0", 256, 66},  {39, "MXFP4", 32, 17},
      {40, "NVFP4", 64, 36},   {41, "Q1_0", 128, 18},    {42, "Q2_0", 64, 18},
  };
  size_t ggml_rows = 0;  // lowbit's internal rows (tests/numeric/grouped_test.cc) aside
  for (const GgmlTypeInfo& t : AllGgmlTypes()) ggml_rows += t.internal ? 0 : 1;
  EXPECT_EQ(ggml_rows, std::size(want));
  for (const Want& w : want) {
    const GgmlTypeInfo* t = FindGgmlType(w.id);
    ASSERT_NE(t, nullptr) << w.name;
    EXPECT_EQ(t->name, w.name);
    EXPECT_EQ(t->block_size, w.block);
    EXPECT_EQ(t->block_bytes, w.bytes) << w.name;
    EXPECT_EQ(FindGgmlTypeByName(w.name), t);
  }
  for (uint32_t removed : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u}) {
    EXPECT_EQ(FindGgmlType(removed), nullptr);
    EXPECT_FALSE(RemovedGgmlTypeName(removed).empty());
  }
  EXPECT_EQ(FindGgmlType(43), nullptr);
  EXPECT_EQ(FindGgmlTypeByName("q4_k")->type, GgmlType::kQ4_K);
  EXPECT_DOUBLE_EQ(TypeInfo(GgmlType::kQ4_K).bits_per_weight(), 4.5);
  EXPECT_EQ(RowBytes(GgmlType::kQ4_0, 64), 36u);
  EXPECT_FALSE(RowBytes(GgmlType::kQ4_0, 48).has_value());
}

}  // namespace
}  // namespace lowbit

// Dequantization is bit-exact with ggml: every `S.T.q` tensor of ../shared/golden/quant-golden.gguf
// (and its `.imx.q` variant) dequantizes to exactly the floats of `S.T.deq`.
#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <type_traits>
#include <vector>

#include "lowbit/formats/gguf_reader.h"
#include "lowbit/numeric/blocks.h"
#include "lowbit/numeric/dequant.h"
#include "lowbit/numeric/half.h"
#include "lowbit/numeric/iq_tables.h"
#include "test_data.h"

namespace lowbit {
namespace {

template <GgmlType T>
void ExpectBlockSize() {
  EXPECT_EQ(sizeof(typename BlockOf<T>::type), TypeInfo(T).block_bytes) << TypeInfo(T).name;
}

TEST(Blocks, StructSizesMatchTheTypeTable) {
  ExpectBlockSize<GgmlType::kQ4_0>();
  ExpectBlockSize<GgmlType::kQ4_1>();
  ExpectBlockSize<GgmlType::kQ5_0>();
  ExpectBlockSize<GgmlType::kQ5_1>();
  ExpectBlockSize<GgmlType::kQ8_0>();
  ExpectBlockSize<GgmlType::kQ8_1>();
  ExpectBlockSize<GgmlType::kQ2_K>();
  ExpectBlockSize<GgmlType::kQ3_K>();
  ExpectBlockSize<GgmlType::kQ4_K>();
  ExpectBlockSize<GgmlType::kQ5_K>();
  ExpectBlockSize<GgmlType::kQ6_K>();
  ExpectBlockSize<GgmlType::kQ8_K>();
  ExpectBlockSize<GgmlType::kIQ4_NL>();
  ExpectBlockSize<GgmlType::kIQ4_XS>();
  ExpectBlockSize<GgmlType::kTQ1_0>();
  ExpectBlockSize<GgmlType::kTQ2_0>();
  ExpectBlockSize<GgmlType::kIQ2_XXS>();
  ExpectBlockSize<GgmlType::kIQ2_XS>();
  ExpectBlockSize<GgmlType::kIQ2_S>();
  ExpectBlockSize<GgmlType::kIQ3_XXS>();
  ExpectBlockSize<GgmlType::kIQ3_S>();
  ExpectBlockSize<GgmlType::kIQ1_S>();
  ExpectBlockSize<GgmlType::kIQ1_M>();
}

TEST(IqTables, GeneratedSourceEqualsTheSharedTables) {
  LOWBIT_REQUIRE_SHARED();
  auto g = GgufFile::Open(testing::SharedPath("golden/iq-tables.gguf"));
  ASSERT_TRUE(g.ok()) << g.status().message();
  auto check = [&](const char* key, auto* table, size_t n) {
    const GgufValue* v = g->Find(key);
    ASSERT_NE(v, nullptr) << key;
    ASSERT_EQ(v->elements().size(), n) << key;
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(table)>>;
    for (size_t i = 0; i < n; ++i) {
      // raw() holds the stored bits zero-extended; compare the table entry's bits the same way.
      const auto bits = static_cast<uint64_t>(static_cast<std::make_unsigned_t<T>>(table[i]));
      ASSERT_EQ(bits, v->elements()[i].raw()) << key << "[" << i << "]";
    }
  };
  check("kmask_iq2xs", iq::kmask_iq2xs, 8);
  check("ksigns_iq2xs", iq::ksigns_iq2xs, 128);
  check("iq2xxs_grid", iq::iq2xxs_grid, 256);
  check("iq2xs_grid", iq::iq2xs_grid, 512);
  check("iq2s_grid", iq::iq2s_grid, 1024);
  check("iq3xxs_grid", iq::iq3xxs_grid, 256);
  check("iq3s_grid", iq::iq3s_grid, 512);
  check("iq1s_grid", iq::iq1s_grid, 2048);
  check("kvalues_iq4nl", iq::kvalues_iq4nl, 16);
  EXPECT_EQ(static_cast<float>(*g->GetFloat("iq1s_delta")), iq::iq1s_delta);
  EXPECT_EQ(static_cast<float>(*g->GetFloat("iq1m_delta")), iq::iq1m_delta);
}

TEST(Dequant, BitExactWithGgmlOnEveryGoldenTensor) {
  LOWBIT_REQUIRE_SHARED();
  auto g = GgufFile::Open(testing::SharedPath("golden/quant-golden.gguf"));
  ASSERT_TRUE(g.ok()) << g.status().message();
  std::set<std::string> types_checked;
  int tensors = 0;
  for (const GgufTensorInfo& q : g->tensors()) {
    if (!q.name.ends_with(".q") || q.type == GgmlType::kQ8_K) continue;
    const std::string deq_name = q.name.substr(0, q.name.size() - 2) + ".deq";
    const GgufTensorInfo* deq = g->FindTensor(deq_name);
    ASSERT_NE(deq, nullptr) << deq_name;
    ASSERT_EQ(deq->n_elements, q.n_elements);
    SCOPED_TRACE(q.name);
    ToFloatFn f = ToFloatFor(q.type);
    ASSERT_NE(f, nullptr) << "no dequantizer for " << TypeInfo(q.type).name;
    std::vector<float> out(q.n_elements);
    f(q.data, out.data(), static_cast<int64_t>(q.n_elements));
    const auto* want = reinterpret_cast<const float*>(deq->data);
    for (uint64_t i = 0; i < q.n_elements; ++i) {
      ASSERT_EQ(FloatBits(out[i]), FloatBits(want[i])) << "element " << i << ": " << out[i] << " vs " << want[i];
    }
    types_checked.insert(std::string(TypeInfo(q.type).name));
    ++tensors;
  }
  // f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0 q2_K..q6_K iq4_nl iq4_xs iq3_xxs iq3_s iq2_xxs iq2_xs iq2_s
  // iq1_s iq1_m tq1_0 tq2_0
  EXPECT_EQ(types_checked.size(), 23u);
  EXPECT_GT(tensors, 150);
}

}  // namespace
}  // namespace lowbit

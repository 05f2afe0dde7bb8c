#include "lowbit/base/huge_page_buffer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <utility>

namespace lowbit {
namespace {

TEST(HugePageBuffer, AlignedZeroedWritableAndMovable) {
  auto b = HugePageBuffer::Allocate((size_t{5} << 20) + 123);
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b->data()) % (size_t{2} << 20), 0u);
  EXPECT_EQ(b->size(), (size_t{5} << 20) + 123);
  for (size_t i = 0; i < b->size(); i += 4096) EXPECT_EQ(b->data()[i], 0);
  b->data()[b->size() - 1] = 7;
  HugePageBuffer moved = std::move(*b);
  EXPECT_EQ(b->data(), nullptr);
  EXPECT_EQ(moved.data()[moved.size() - 1], 7);
  auto empty = HugePageBuffer::Allocate(0);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->data(), nullptr);
}

}  // namespace
}  // namespace lowbit

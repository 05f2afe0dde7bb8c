// How a model held in memory lays out its weights (model/shard.h, ImageRowStep): rows whose length
// is a multiple of 4 KiB are one cache line apart more, the bytes between them zero, every row the
// file's, and the model's logits the same bits as the mapped file's; a window of the image (what
// --tp-send-weights streams) is the same bytes as the whole (ranks holding padded shards:
// tensor_parallel_test.cc).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "lowbit/advise/memory.h"
#include "lowbit/formats/tensor_data.h"
#include "lowbit/kernels/dot.h"
#include "lowbit/model/llama.h"
#include "lowbit/model/shard.h"
#include "model/synth_tiny.h"

namespace lowbit {
namespace {

// `lowbit synth --shape tiny-wide` (dim 1024, FFN 1024: every 2-D weight's F32 rows are 4096 bytes).
Expected<GgufFile> SynthWide(const testing::TempDir& dir, Residency residency) { return testing::SynthShape(dir, "tiny-wide", "F32", residency); }

TEST(ImageLayout, RowsAMultipleOf4KiBGetOneLineMore) {
  EXPECT_EQ(ImageRowStep(4096), 4160u);
  EXPECT_EQ(ImageRowStep(8192), 8256u);
  EXPECT_EQ(ImageRowStep(4095), 4095u);
  EXPECT_EQ(ImageRowStep(2304), 2304u);  // Q4_K at 4096 columns
  EXPECT_EQ(ImageRowStep(0), 0u);
  ShardImage img;
  img.Add(TensorPiece{.rows = 3, .bytes = 4096});
  img.Add(TensorPiece{.rows = 1, .bytes = 4096});  // one row: nothing to pad
  img.Add(TensorPiece{.rows = 2, .bytes = 1000});
  ASSERT_EQ(img.pieces.size(), 3u);
  EXPECT_EQ(img.pieces[0].step(), 4160u);
  EXPECT_EQ(img.pieces[1].step(), 4096u);
  EXPECT_EQ(img.pieces[2].step(), 1000u);
  EXPECT_EQ(img.pieces[1].image_offset, 3 * 4160u);
  EXPECT_EQ(img.bytes, img.pieces[2].image_offset + 2000);
}

TEST(ImageLayout, WindowsOfAPaddedImageAreTheWholeImagesBytes) {
  testing::TempDir dir;
  auto g = SynthWide(dir, Residency::kMapped);
  ASSERT_TRUE(g.ok()) << g.status().message();
  const GgufTensorInfo* down = g->FindTensor("blk.0.ffn_down.weight");
  ASSERT_NE(down, nullptr);
  const uint64_t rb = 4096;
  ASSERT_EQ(down->n_bytes, 1024 * rb);
  ShardImage img;
  img.Add(TensorPiece{.tensor = down, .row0 = 3, .rows = 40, .byte0 = 0, .bytes = rb, .row_bytes = rb});     // whole rows: padded
  img.Add(TensorPiece{.tensor = down, .row0 = 100, .rows = 9, .byte0 = 1024, .bytes = 2048, .row_bytes = rb});  // a column range
  img.Add(TensorPiece{.tensor = down, .row0 = 500, .rows = 300, .byte0 = 0, .bytes = rb, .row_bytes = rb});  // more than one read's rows
  ASSERT_EQ(img.pieces[0].step(), rb + 64);
  auto reader = TensorDataReader::For(*g);
  ASSERT_TRUE(reader.ok());
  std::vector<uint8_t> whole(img.bytes, 0xAB);
  ASSERT_TRUE(FillImage(img, *reader, 0, img.bytes, whole.data()).ok());
  for (const TensorPiece& p : img.pieces) {
    for (uint64_t r = 0; r < p.rows; ++r) {
      const uint8_t* at = whole.data() + p.image_offset + r * p.step();
      ASSERT_EQ(std::memcmp(at, down->data + (p.row0 + r) * rb + p.byte0, p.bytes), 0) << "row " << p.row0 + r;
      for (uint64_t i = p.bytes; i < p.step(); ++i) ASSERT_EQ(at[i], 0) << "padding of row " << p.row0 + r;
    }
  }
  for (uint64_t window : {uint64_t{1000}, uint64_t{4097}, uint64_t{65539}, img.bytes}) {
    std::vector<uint8_t> got(img.bytes, 0xAB);
    for (uint64_t b = 0; b < img.bytes; b += window) {
      const uint64_t n = std::min(window, img.bytes - b);
      ASSERT_TRUE(FillImage(img, *reader, b, n, got.data() + b).ok());
    }
    EXPECT_EQ(got, whole) << "windows of " << window << " bytes";
  }
}

// Models a and b give the same logits bit for bit, on one thread and two: the prompt, then `steps`
// greedy decode steps.
void ExpectSameLogits(const LlamaModel& ma, const LlamaModel& mb, const std::vector<int32_t>& prompt, int64_t steps) {
  const int64_t nv = ma.config().n_vocab;
  for (int threads : {1, 2}) {
    LlamaSession a(ma, 64, threads), b(mb, 64, threads);
    const float* pa = a.Forward(prompt, 0);
    std::vector<float> want(pa, pa + nv);
    const float* pb = b.Forward(prompt, 0);
    ASSERT_EQ(std::vector<float>(pb, pb + nv), want) << threads << " threads, prefill";
    const auto n = static_cast<int64_t>(prompt.size());
    for (int64_t pos = n; pos < n + steps; ++pos) {
      const int32_t tok = static_cast<int32_t>(std::max_element(want.begin(), want.end()) - want.begin());
      pa = a.Forward(tok, pos);
      want.assign(pa, pa + nv);
      pb = b.Forward(tok, pos);
      ASSERT_EQ(std::vector<float>(pb, pb + nv), want) << threads << " threads, position " << pos;
    }
  }
}

// The model held in memory (rows padded) gives the mapped file's logits bit for bit, on one thread
// and two, prefill and decode.
TEST(ImageLayout, AModelInMemoryGivesTheMappedFilesLogits) {
  testing::TempDir dir;
  auto mapped = SynthWide(dir, Residency::kMapped);
  auto read = SynthWide(dir, Residency::kInMemory);
  ASSERT_TRUE(mapped.ok() && read.ok()) << mapped.status().message();
  EXPECT_FALSE(mapped->in_memory());
  EXPECT_TRUE(read->in_memory());
  auto ma = LlamaModel::Load(*mapped);
  auto mb = LlamaModel::Load(*read);
  ASSERT_TRUE(ma.ok() && mb.ok()) << mb.status().message();
  EXPECT_EQ(ma->layers[0].down.row_stride, 4096u);
  EXPECT_EQ(mb->layers[0].down.row_stride, 4160u);
  EXPECT_EQ(mb->token_embd.row_stride, 4160u);
  // What advise's memory model says the image holds (HeldWeightBytes rounds its last piece up to a line).
  EXPECT_LE(mb->owned_bytes(), HeldWeightBytes(*ma));
  EXPECT_GT(mb->owned_bytes() + 64, HeldWeightBytes(*ma));
  ExpectSameLogits(*ma, *mb, {1, 40, 300, 7, 128, 9, 77, 12, 5}, 11);
}

// Weights held in memory (testing::kInterleavingTypes) take their interleaved type
// where the active table runs it (numeric/interleave.h; the embedding keeps the file's layout), and
// the model gives the mapped file's logits bit for bit: a prompt past the GEMM threshold, then decode
// steps.
class ImageLayoutInterleaved : public ::testing::TestWithParam<GgmlType> {};

TEST_P(ImageLayoutInterleaved, AModelInMemoryIsInterleavedAndGivesTheMappedFilesLogits) {
  const GgmlType t = GetParam();
  const testing::BothResidencies both("tiny-wide", t);
  ASSERT_TRUE(both.status.ok()) << both.status.message();
  const LlamaModel *ma = &*both.mapped, *mb = &*both.read;
  ASSERT_EQ(ma->layers[0].wq.type, t);  // (a file of Q2_K keeps ffn_down in Q3_K, as llama.cpp's mix does)
  const auto held = [](GgmlType file) { return InterleavedFor(ActiveDotKernels(), file).value_or(file); };
  EXPECT_EQ(mb->layers[0].wq.type, held(t));
  EXPECT_EQ(mb->layers[0].down.type, held(ma->layers[0].down.type));
  EXPECT_EQ(mb->token_embd.type, ma->token_embd.type);
  EXPECT_EQ(mb->owned_bytes(), HeldWeightBytes(*ma));
  ExpectSameLogits(*ma, *mb, {1, 40, 300, 7, 128, 9, 77, 12, 5, 66, 301, 8, 19, 4}, 8);
}

INSTANTIATE_TEST_SUITE_P(InterleavedTypes, ImageLayoutInterleaved, ::testing::ValuesIn(testing::kInterleavingTypes),
                         [](const auto& p) { return std::string(TypeInfo(p.param).name); });

}  // namespace
}  // namespace lowbit

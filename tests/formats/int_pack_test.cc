// The GPTQ word packing (int_pack.h) against an independent transcription of the layout as
// FORMATS.md B2 states it (explicit word and bit offsets per value), and known words.
#include "lowbit/formats/int_pack.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace lowbit {
namespace {

// The oracle: value j of a 32-value 3-bit run, by FORMATS.md's table (word, bit offset), with the
// two straddling values split by hand.
void OraclePack3(const int32_t* v, uint32_t* w) {
  w[0] = w[1] = w[2] = 0;
  for (int j = 0; j < 10; ++j) w[0] |= static_cast<uint32_t>(v[j]) << (3 * j);
  w[0] |= static_cast<uint32_t>(v[10] & 3) << 30;
  w[1] |= static_cast<uint32_t>(v[10] >> 2) & 1;
  for (int j = 0; j < 10; ++j) w[1] |= static_cast<uint32_t>(v[11 + j]) << (3 * j + 1);
  w[1] |= static_cast<uint32_t>(v[21] & 1) << 31;
  w[2] |= static_cast<uint32_t>(v[21] >> 1) & 3;
  for (int j = 0; j < 10; ++j) w[2] |= static_cast<uint32_t>(v[22 + j]) << (3 * j + 2);
}

std::vector<int32_t> RandomValues(std::mt19937& rng, int64_t n, int bits) {
  std::uniform_int_distribution<int32_t> d(0, (1 << bits) - 1);
  std::vector<int32_t> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

TEST(IntPack, SupportedCombinations) {
  for (int w : {8, 16, 32, 64}) {
    EXPECT_TRUE(PackingSupported(2, w));
    EXPECT_TRUE(PackingSupported(4, w));
    EXPECT_TRUE(PackingSupported(8, w));
    EXPECT_EQ(PackingSupported(3, w), w == 32);
  }
  EXPECT_FALSE(PackingSupported(5, 32));
  EXPECT_FALSE(PackingSupported(4, 24));
  EXPECT_EQ(ValuesPerChunk(4, 32), 8);
  EXPECT_EQ(ValuesPerChunk(3, 32), 32);
  EXPECT_EQ(WordsPerChunk(3, 32), 3);
  EXPECT_EQ(OnesPerField(4, 32), 0x11111111u);
  EXPECT_EQ(OnesPerField(2, 32), 0x55555555u);
  EXPECT_EQ(OnesPerField(8, 32), 0x01010101u);
  EXPECT_EQ(OnesPerField(4, 64), 0x1111111111111111ull);
  EXPECT_EQ(OnesPerField(8, 8), 0x01u);
}

TEST(IntPack, ThreeBitMatchesTheTableWordForWord) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    auto v = RandomValues(rng, 32, 3);
    uint32_t want[3];
    OraclePack3(v.data(), want);
    uint8_t got[12];
    PackRow(v.data(), 32, 3, 32, got);
    for (int k = 0; k < 3; ++k) EXPECT_EQ(static_cast<uint32_t>(LoadWord(got + 4 * k, 32)), want[k]) << trial << " " << k;
    std::vector<int32_t> back(32);
    UnpackRow(got, 32, 3, 32, back.data());
    EXPECT_EQ(back, v);
  }
}

TEST(IntPack, KnownWords) {
  // Symmetric GPTQ v1 zeros (stored 2^(b-1) - 1 in every field).
  std::vector<int32_t> sevens(8, 7), ones(16, 1), f127(4, 127), threes(32, 3);
  uint8_t w[12];
  PackRow(sevens.data(), 8, 4, 32, w);
  EXPECT_EQ(LoadWord(w, 32), 0x77777777u);
  PackRow(ones.data(), 16, 2, 32, w);
  EXPECT_EQ(LoadWord(w, 32), 0x55555555u);
  PackRow(f127.data(), 4, 8, 32, w);
  EXPECT_EQ(LoadWord(w, 32), 0x7F7F7F7Fu);
  // 3-bit 3s: the stream bit k is set unless k % 3 == 2 (derived by hand, FORMATS-NOTES.md).
  PackRow(threes.data(), 32, 3, 32, w);
  EXPECT_EQ(LoadWord(w, 32), 0xDB6DB6DBu);
  EXPECT_EQ(LoadWord(w + 4, 32), 0xB6DB6DB6u);
  EXPECT_EQ(LoadWord(w + 8, 32), 0x6DB6DB6Du);
  // Value k in field k, LSB first.
  std::vector<int32_t> ramp = {0, 1, 2, 3, 4, 5, 6, 7};
  PackRow(ramp.data(), 8, 4, 32, w);
  EXPECT_EQ(LoadWord(w, 32), 0x76543210u);
  PackRow(ramp.data(), 4, 8, 32, w);
  EXPECT_EQ(LoadWord(w, 32), 0x03020100u);
  PackRow(ramp.data(), 2, 4, 8, w);
  EXPECT_EQ(LoadWord(w, 8), 0x10u);
}

TEST(IntPack, RowRoundTripsEveryWidth) {
  std::mt19937 rng(11);
  for (int bits : {2, 3, 4, 8}) {
    for (int wbits : {8, 16, 32, 64}) {
      if (!PackingSupported(bits, wbits)) continue;
      const int64_t n = (bits == 3 ? 32 : 64 / bits) * 5;  // whole words at every width
      auto v = RandomValues(rng, n, bits);
      std::vector<uint8_t> words(n * bits / 8);
      PackRow(v.data(), n, bits, wbits, words.data());
      std::vector<int32_t> back(n);
      UnpackRow(words.data(), n, bits, wbits, back.data());
      EXPECT_EQ(back, v) << bits << "-bit in int" << wbits;
      // The packing is the same bit stream whatever the word width (little-endian words).
      if (bits != 3 && wbits != 32) {
        std::vector<uint8_t> w32(n * bits / 8);
        PackRow(v.data(), n, bits, 32, w32.data());
        EXPECT_EQ(words, w32) << bits << "-bit in int" << wbits;
      }
    }
  }
}

TEST(IntPack, ColumnsPackAlongTheInput) {
  // 2 outputs x 8 inputs, 4-bit: qweight is [1, 2]; word o holds output o's inputs 0..7.
  std::vector<uint8_t> codes = {0, 1, 2, 3, 4, 5, 6, 7,  //
                                15, 14, 13, 12, 11, 10, 9, 8};
  uint8_t w[8];
  PackColumns(codes.data(), 2, 8, 4, 32, w);
  EXPECT_EQ(LoadWord(w, 32), 0x76543210u);
  EXPECT_EQ(LoadWord(w + 4, 32), 0x89ABCDEFu);
  std::vector<uint8_t> back(16);
  UnpackColumns(w, 2, 8, 4, 32, back.data());
  EXPECT_EQ(back, codes);
}

TEST(IntPack, ColumnsRoundTripAndMatchTheRowPacking) {
  std::mt19937 rng(3);
  for (int bits : {2, 3, 4, 8}) {
    for (int wbits : {8, 16, 32, 64}) {
      if (!PackingSupported(bits, wbits)) continue;
      const int64_t rows = 5, cols = ValuesPerChunk(bits, wbits) * 3;
      std::vector<uint8_t> codes(rows * cols);
      for (auto& c : codes) c = static_cast<uint8_t>(rng() & ((1u << bits) - 1));
      const int64_t word_rows = cols * bits / wbits, wb = wbits / 8;
      std::vector<uint8_t> words(word_rows * rows * wb);
      PackColumns(codes.data(), rows, cols, bits, wbits, words.data());
      // Column o of the words is output o's run of codes.
      for (int64_t r = 0; r < rows; ++r) {
        std::vector<int32_t> run(codes.begin() + r * cols, codes.begin() + (r + 1) * cols);
        std::vector<uint8_t> want(word_rows * wb);
        PackRow(run.data(), cols, bits, wbits, want.data());
        for (int64_t k = 0; k < word_rows; ++k) {
          EXPECT_EQ(LoadWord(words.data() + (k * rows + r) * wb, wbits), LoadWord(want.data() + k * wb, wbits));
        }
      }
      std::vector<uint8_t> back(rows * cols);
      UnpackColumns(words.data(), rows, cols, bits, wbits, back.data());
      EXPECT_EQ(back, codes) << bits << "-bit in int" << wbits;
    }
  }
}

}  // namespace
}  // namespace lowbit

// bitsandbytes' code books, its decision trees, the dynamic 8-bit map and lowbit's internal 4-bit rows
// (numeric/bnb.h), checked against the published tables and the algorithm's definitions.
#include "lowbit/numeric/bnb.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "lowbit/numeric/dequant.h"
#include "lowbit/numeric/ggml_type.h"

namespace lowbit {
namespace {

using enum GgmlType;

// create_dynamic_map(signed=True) as torch prints it (float32 values as Python floats): the published
// 256-entry table (e.g. in ports of bitsandbytes' 8-bit optimizers that bake it in).
constexpr double kDynamicMap[256] = {
    -0.992968738079071, -0.9789062738418579, -0.96484375, -0.9507812261581421, -0.936718761920929, -0.922656238079071,
    -0.9085937738418579, -0.89453125, -0.8804687261581421, -0.866406261920929, -0.852343738079071, -0.8382812738418579,
    -0.82421875, -0.8101562261581421, -0.796093761920929, -0.782031238079071, -0.7679687738418579, -0.75390625,
    -0.7398437261581421, -0.725781261920929, -0.711718738079071, -0.6976562738418579, -0.68359375, -0.6695312261581421,
    -0.655468761920929, -0.641406238079071, -0.6273437738418579, -0.61328125, -0.5992187261581421, -0.585156261920929,
    -0.571093738079071, -0.5570312738418579, -0.54296875, -0.5289062261581421, -0.514843761920929, -0.500781238079071,
    -0.4867187738418579, -0.47265625, -0.4585937261581421, -0.44453126192092896, -0.43046873807907104, -0.4164062738418579,
    -0.40234375, -0.3882812261581421, -0.37421876192092896, -0.36015623807907104, -0.3460937738418579, -0.33203125,
    -0.3179687261581421, -0.30390626192092896, -0.28984373807907104, -0.2757812738418579, -0.26171875, -0.24765624105930328,
    -0.23359374701976776, -0.21953125298023224, -0.20546874403953552, -0.19140625, -0.17734375596046448, -0.16328124701976776,
    -0.14921875298023224, -0.13515624403953552, -0.12109375, -0.10703125596046448, -0.09859374910593033, -0.09578125178813934,
    -0.09296874701976776, -0.09015624970197678, -0.08734375238418579, -0.08453124761581421, -0.08171875029802322,
    -0.07890625298023224, -0.07609374821186066, -0.07328125089406967, -0.07046875357627869, -0.0676562488079071,
    -0.06484375149011612, -0.06203124672174454, -0.05921874940395355, -0.05640625208616257, -0.053593751043081284,
    -0.05078125, -0.047968748956918716, -0.04515624791383743, -0.04234375059604645, -0.039531249552965164,
    -0.03671874850988388, -0.033906251192092896, -0.031093750149011612, -0.028281250968575478, -0.025468749925494194,
    -0.02265625074505806, -0.019843749701976776, -0.017031250521540642, -0.014218749478459358, -0.011406250298023224,
    -0.009718749672174454, -0.009156250394880772, -0.008593750186264515, -0.008031249977648258, -0.0074687497690320015,
    -0.006906250026077032, -0.006343750283122063, -0.005781250074505806, -0.005218749865889549, -0.00465625012293458,
    -0.004093749914318323, -0.00353124993853271, -0.002968749962747097, -0.002406249986961484, -0.001843750011175871,
    -0.0012812500353902578, -0.0009437499684281647, -0.0008312499849125743, -0.0007187500013969839, -0.0006062500178813934,
    -0.000493750034365803, -0.00038124999264255166, -0.00026875000912696123, -0.00015624999650754035, -8.874999912222847e-05,
    -6.625000241911039e-05, -4.374999844003469e-05, -2.1249999917927198e-05, -7.749999895168003e-06, -3.2499999633728294e-06,
    -5.499999815583578e-07, 0.0, 5.499999815583578e-07, 3.2499999633728294e-06, 7.749999895168003e-06, 2.1249999917927198e-05,
    4.374999844003469e-05, 6.625000241911039e-05, 8.874999912222847e-05, 0.00015624999650754035, 0.00026875000912696123,
    0.00038124999264255166, 0.000493750034365803, 0.0006062500178813934, 0.0007187500013969839, 0.0008312499849125743,
    0.0009437499684281647, 0.0012812500353902578, 0.001843750011175871, 0.002406249986961484, 0.002968749962747097,
    0.00353124993853271, 0.004093749914318323, 0.00465625012293458, 0.005218749865889549, 0.005781250074505806,
    0.006343750283122063, 0.006906250026077032, 0.0074687497690320015, 0.008031249977648258, 0.008593750186264515,
    0.009156250394880772, 0.009718749672174454, 0.011406250298023224, 0.014218749478459358, 0.017031250521540642,
    0.019843749701976776, 0.02265625074505806, 0.025468749925494194, 0.028281250968575478, 0.031093750149011612,
    0.033906251192092896, 0.03671874850988388, 0.039531249552965164, 0.04234375059604645, 0.04515624791383743,
    0.047968748956918716, 0.05078125, 0.053593751043081284, 0.05640625208616257, 0.05921874940395355, 0.06203124672174454,
    0.06484375149011612, 0.0676562488079071, 0.07046875357627869, 0.07328125089406967, 0.07609374821186066,
    0.07890625298023224, 0.08171875029802322, 0.08453124761581421, 0.08734375238418579, 0.09015624970197678,
    0.09296874701976776, 0.09578125178813934, 0.09859374910593033, 0.10703125596046448, 0.12109375, 0.13515624403953552,
    0.14921875298023224, 0.16328124701976776, 0.17734375596046448, 0.19140625, 0.20546874403953552, 0.21953125298023224,
    0.23359374701976776, 0.24765624105930328, 0.26171875, 0.2757812738418579, 0.28984373807907104, 0.30390626192092896,
    0.3179687261581421, 0.33203125, 0.3460937738418579, 0.36015623807907104, 0.37421876192092896, 0.3882812261581421,
    0.40234375, 0.4164062738418579, 0.43046873807907104, 0.44453126192092896, 0.4585937261581421, 0.47265625,
    0.4867187738418579, 0.500781238079071, 0.514843761920929, 0.5289062261581421, 0.54296875, 0.5570312738418579,
    0.571093738079071, 0.585156261920929, 0.5992187261581421, 0.61328125, 0.6273437738418579, 0.641406238079071,
    0.655468761920929, 0.6695312261581421, 0.68359375, 0.6976562738418579, 0.711718738079071, 0.725781261920929,
    0.7398437261581421, 0.75390625, 0.7679687738418579, 0.782031238079071, 0.796093761920929, 0.8101562261581421,
    0.82421875, 0.8382812738418579, 0.852343738079071, 0.866406261920929, 0.8804687261581421, 0.89453125,
    0.9085937738418579, 0.922656238079071, 0.936718761920929, 0.9507812261581421, 0.96484375, 0.9789062738418579,
    0.992968738079071, 1.0};

TEST(BnbDynamicMap, EqualsThePublishedTableBitForBit) {
  const std::array<float, 256>& m = BnbDynamicMap();
  int differ = 0;
  for (int i = 0; i < 256; ++i) {
    if (m[i] != static_cast<float>(kDynamicMap[i])) {
      ++differ;
      ADD_FAILURE() << "index " << i << ": " << m[i] << " want " << kDynamicMap[i];
    }
  }
  EXPECT_EQ(differ, 0);
}

TEST(Bnb4Levels, Nf4IsTheQloraTable) {
  const std::array<float, 16>& nf4 = Bnb4Levels(Bnb4Type::kNf4);
  EXPECT_EQ(nf4[0], -1.0f);
  EXPECT_EQ(nf4[7], 0.0f);
  EXPECT_EQ(nf4[15], 1.0f);
  EXPECT_EQ(nf4[1], static_cast<float>(-0.6961928009986877));
  EXPECT_EQ(nf4[8], static_cast<float>(0.07958029955625534));
  for (int i = 1; i < 16; ++i) EXPECT_LT(nf4[i - 1], nf4[i]);
}

TEST(Bnb4Levels, Fp4EqualsGet4bitTypeDividedBy12) {
  // get_4bit_type("fp4"): [0, 0.0625, 8, 12, 4, 6, 2, 3, -0, -0.0625, -8, -12, -4, -6, -2, -3] / 12 in float32.
  const float raw[16] = {0, 0.0625f, 8, 12, 4, 6, 2, 3, -0.0f, -0.0625f, -8, -12, -4, -6, -2, -3};
  const std::array<float, 16>& fp4 = Bnb4Levels(Bnb4Type::kFp4);
  for (int i = 0; i < 16; ++i) {
    const float want = raw[i] / 12.0f;
    EXPECT_EQ(std::memcmp(&fp4[i], &want, 4), 0) << "code " << i << ": " << fp4[i] << " want " << want;
  }
}

// The nearest level by distance, ties to the lower code (never hit by the random values below).
int Nearest(const std::array<float, 16>& levels, float x) {
  int best = 0;
  for (int i = 1; i < 16; ++i) {
    if (std::fabs(x - levels[i]) < std::fabs(x - levels[best])) best = i;
  }
  return best;
}

TEST(Bnb4Encode, IsTheNearestLevelAwayFromMidpoints) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (Bnb4Type t : {Bnb4Type::kNf4, Bnb4Type::kFp4}) {
    const std::array<float, 16>& levels = Bnb4Levels(t);
    int checked = 0;
    for (int k = 0; k < 200000; ++k) {
      const float x = u(rng);
      // Skip values within 1e-6 of a midpoint: there the tree's float constants decide.
      bool near_mid = false;
      for (int i = 0; i < 16; ++i)
        for (int j = 0; j < 16; ++j)
          if (std::fabs(x - (levels[i] + levels[j]) / 2) < 1e-6f && levels[i] != levels[j]) near_mid = true;
      if (near_mid) continue;
      const int want = Nearest(levels, x);
      const int got = Bnb4Encode(t, x);
      ASSERT_EQ(levels[got], levels[want]) << Bnb4TypeName(t) << " x=" << x;
      ++checked;
    }
    EXPECT_GT(checked, 190000);
  }
}

TEST(Bnb4Encode, ThresholdsSendTheMidpointDown) {
  // `x > t`: a value equal to the threshold takes the lower code.
  EXPECT_EQ(Bnb4Encode(Bnb4Type::kNf4, 0.8614784181118011f), 0b1110);
  EXPECT_EQ(Bnb4Encode(Bnb4Type::kNf4, std::nextafter(0.8614784181118011f, 2.0f)), 0b1111);
  EXPECT_EQ(Bnb4Encode(Bnb4Type::kNf4, 0.03979014977812767f), 0b0111);
  EXPECT_EQ(Bnb4Encode(Bnb4Type::kNf4, 0.0f), 0b0111);
  EXPECT_EQ(Bnb4Encode(Bnb4Type::kNf4, -1.0f), 0b0000);
  EXPECT_EQ(Bnb4Encode(Bnb4Type::kNf4, 1.0f), 0b1111);
  EXPECT_EQ(Bnb4Encode(Bnb4Type::kNf4, NAN), 0);  // an all-zero block: 0 * (1 / 0)
  EXPECT_EQ(Bnb4Encode(Bnb4Type::kFp4, 0.0f), 0b0000);
  EXPECT_EQ(Bnb4Encode(Bnb4Type::kFp4, -0.0f), 0b0000);  // -0 < 0 is false: positive zero
  EXPECT_EQ(Bnb4Encode(Bnb4Type::kFp4, -1.0f), 0b1011);
  EXPECT_EQ(Bnb4Encode(Bnb4Type::kFp4, 0.5f), 0b0101);
  EXPECT_EQ(Bnb4Encode(Bnb4Type::kFp4, -0.25f), 0b1111);
  EXPECT_EQ(Bnb4Encode(Bnb4Type::kFp4, NAN), 0);
}

TEST(BnbEncode8, DescentThenMidpointIsTheNearestCode) {
  const std::array<float, 256>& m = BnbDynamicMap();
  for (int i = 0; i < 256; ++i) EXPECT_EQ(BnbEncode8(m, m[i]), i) << i;
  // A value on a midpoint keeps the descent's final pivot (always even), wherever that lies: down for
  // the midpoint of 200 and 201, up for that of 201 and 202 (nearest search with a fixed tie rule
  // would pick the same side for both).
  EXPECT_EQ(BnbEncode8(m, (m[200] + m[201]) * 0.5f), 200);
  EXPECT_EQ(BnbEncode8(m, (m[201] + m[202]) * 0.5f), 202);
  EXPECT_EQ(BnbEncode8(m, -1.0f), 0);
  EXPECT_EQ(BnbEncode8(m, 1.0f), 255);
  EXPECT_EQ(BnbEncode8(m, 2.0f), 255);
  EXPECT_EQ(BnbEncode8(m, NAN), 0);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (int k = 0; k < 100000; ++k) {
    const float x = u(rng);
    const int q = BnbEncode8(m, x);
    for (int i = 0; i < 256; ++i) ASSERT_LE(std::fabs(x - m[q]), std::fabs(x - m[i])) << x;
  }
}

TEST(Bnb4Types, AreInternalRows) {
  struct Want { GgmlType t; const char* name; uint32_t block, bytes; };
  for (const Want& w : {Want{kNF4G32, "NF4G32", 32, 20}, Want{kNF4G64, "NF4G64", 64, 36}, Want{kFP4G32, "FP4G32", 32, 20},
                        Want{kFP4G64, "FP4G64", 64, 36}, Want{kNF4G64x2, "NF4G64x2", 128, 72}, Want{kFP4G64x2, "FP4G64x2", 128, 72}}) {
    const GgmlTypeInfo* t = FindGgmlType(static_cast<uint32_t>(w.t));
    ASSERT_NE(t, nullptr) << w.name;
    EXPECT_EQ(t->name, w.name);
    EXPECT_EQ(t->block_size, w.block);
    EXPECT_EQ(t->block_bytes, w.bytes);
    EXPECT_TRUE(t->internal);
    EXPECT_EQ(FindGgmlTypeByName(w.name), nullptr);
    EXPECT_TRUE(IsBnb4Type(w.t));
  }
}

TEST(Bnb4Rows, RowTypeNeedsWholeBlocks) {
  EXPECT_EQ(*Bnb4RowType(Bnb4Type::kNf4, 288, 64), kNF4G32);  // 288 = 4.5 x 64
  EXPECT_EQ(*Bnb4RowType(Bnb4Type::kNf4, 2048, 64), kNF4G64x2);  // two blocks of 64 at a time
  EXPECT_EQ(*Bnb4RowType(Bnb4Type::kNf4, 320, 64), kNF4G64);     // 320 = 2.5 x 128
  EXPECT_EQ(*Bnb4RowType(Bnb4Type::kFp4, 2048, 4096), kFP4G64x2);  // a block spans two rows
  EXPECT_EQ(*Bnb4RowType(Bnb4Type::kFp4, 2048, 32), kFP4G32);
  EXPECT_FALSE(Bnb4RowType(Bnb4Type::kNf4, 100, 64).ok());
}

TEST(Bnb4Rows, PackAndUnpackAreExactAndDequantizeAsBitsandbytes) {
  std::mt19937 rng(11);
  for (auto [rows, cols, blocksize] : {std::tuple<int64_t, int64_t, int64_t>{3, 288, 64}, {4, 256, 4096}, {5, 64, 32}, {2, 128, 128}, {3, 320, 64}, {2, 384, 64}}) {
    const int64_t n = rows * cols, nb = (n + blocksize - 1) / blocksize;
    std::vector<uint8_t> packed(static_cast<size_t>(n / 2));
    for (auto& b : packed) b = static_cast<uint8_t>(rng());
    std::vector<float> absmax(static_cast<size_t>(nb));
    for (auto& a : absmax) a = std::uniform_real_distribution<float>(0.01f, 2.0f)(rng);
    for (Bnb4Type t : {Bnb4Type::kNf4, Bnb4Type::kFp4}) {
      const GgmlType type = *Bnb4RowType(t, cols, blocksize);
      std::vector<uint8_t> rows_data(static_cast<size_t>(rows * *RowBytes(type, static_cast<uint64_t>(cols))));
      PackBnb4Rows(type, packed.data(), absmax, rows, cols, blocksize, rows_data.data());
      // Dequantized rows = bitsandbytes' level[q] * absmax[k / blocksize], high nibble first.
      std::vector<float> got(static_cast<size_t>(n));
      ASSERT_TRUE(DequantizeRow(type, rows_data.data(), got.data(), n));
      for (int64_t k = 0; k < n; ++k) {
        const int q = k % 2 == 0 ? packed[k / 2] >> 4 : packed[k / 2] & 0xF;
        const float want = Bnb4Levels(t)[q] * absmax[k / blocksize];
        ASSERT_EQ(std::memcmp(&got[k], &want, 4), 0) << k;
      }
      std::vector<uint8_t> back(packed.size());
      std::vector<float> back_absmax(absmax.size());
      UnpackBnb4Rows(type, rows_data.data(), rows, cols, blocksize, back.data(), back_absmax);
      EXPECT_EQ(back, packed);
      EXPECT_EQ(back_absmax, absmax);
    }
  }
}

}  // namespace
}  // namespace lowbit

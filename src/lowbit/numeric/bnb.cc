#include "lowbit/numeric/bnb.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <vector>

#include "lowbit/base/check.h"

namespace lowbit {
namespace {

// bitsandbytes' nf4_dequantization_lut (csrc/kernels.cu), code order.
constexpr std::array<float, 16> kNf4 = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
    -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
    0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f,
    0.7229568362236023f, 1.0f};

// fp4_dequantization_lut (magnitudes of codes 0..7) with the sign of bit 3 (1.0f - 2 * bit: exact).
constexpr std::array<float, 8> kFp4Magnitude = {0.0f,        0.005208333333f, 0.66666667f, 1.0f,
                                                0.33333333f, 0.5f,            0.16666667f, 0.25f};

constexpr std::array<float, 16> BuildFp4() {
  std::array<float, 16> v{};
  for (int i = 0; i < 16; ++i) v[i] = kFp4Magnitude[i & 7] * (i & 8 ? -1.0f : 1.0f);
  return v;
}
constexpr std::array<float, 16> kFp4 = BuildFp4();

// dQuantizeNF4: the midpoints between neighbouring levels as bitsandbytes' float constants.
uint8_t EncodeNf4(float x) {
  if (x > 0.03979014977812767f) {
    if (x > 0.3893125355243683f) {
      if (x > 0.6427869200706482f) return x > 0.8614784181118011f ? 0b1111 : 0b1110;
      return x > 0.5016634166240692f ? 0b1101 : 0b1100;
    }
    if (x > 0.2035212516784668f) return x > 0.2920137718319893f ? 0b1011 : 0b1010;
    return x > 0.1202552504837513f ? 0b1001 : 0b1000;
  }
  if (x > -0.33967943489551544f) {
    if (x > -0.13791173323988914f) return x > -0.045525018125772476f ? 0b0111 : 0b0110;
    return x > -0.23460740596055984f ? 0b0101 : 0b0100;
  }
  if (x > -0.6106329262256622f) return x > -0.4599952697753906f ? 0b0011 : 0b0010;
  return x > -0.8480964004993439f ? 0b0001 : 0b0000;
}

// dQuantizeFP4.
uint8_t EncodeFp4(float x) {
  const uint8_t sign = x < 0 ? 0b1000 : 0;
  x = std::fabs(x);
  if (x > 0.29166667f) {
    if (x > 0.583333f) return (x > 0.8333333f ? 0b0011 : 0b0010) + sign;
    return (x > 0.4166667f ? 0b0101 : 0b0100) + sign;
  }
  if (x > 0.0859375f) return (x > 0.20833333f ? 0b0111 : 0b0110) + sign;
  return (x > 0.00260417f ? 0b0001 : 0b0000) + sign;
}

// torch.linspace(start, end, steps) rounded to float32: the first half start + step * i, the second
// end - step * (steps - 1 - i), step = (end - start) / (steps - 1), in double.
std::vector<float> LinspaceF32(double start, double end, int steps) {
  const double step = (end - start) / (steps - 1);
  std::vector<float> v(static_cast<size_t>(steps));
  const int halfway = steps / 2;
  for (int i = 0; i < steps; ++i) {
    v[static_cast<size_t>(i)] = static_cast<float>(i < halfway ? start + step * i : end - step * (steps - 1 - i));
  }
  return v;
}

std::array<float, 256> BuildDynamicMap() {
  // create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): non_sign_bits = 7, no
  // additional items; exponent i contributes 2^i means of linspace(0.1, 1, 2^i + 1) (float32 values),
  // scaled by 10^(i-6). The published table (tests/numeric/bnb_test.cc) is matched bit for bit when
  // the means and the scaling are computed in double and rounded once to float32; rounding the means
  // to float32 first, or computing linspace's step in float32, each changes 76-92 of the 256 values.
  std::vector<float> data;
  for (int i = 0; i < 7; ++i) {
    const std::vector<float> b = LinspaceF32(0.1, 1.0, (1 << i) + 1);
    const double scale = std::pow(10.0, i - 6);
    for (size_t j = 0; j + 1 < b.size(); ++j) {
      const double mean = (static_cast<double>(b[j]) + static_cast<double>(b[j + 1])) / 2.0;
      data.push_back(static_cast<float>(scale * mean));
      data.push_back(-static_cast<float>(scale * mean));
    }
  }
  data.push_back(0.0f);
  data.push_back(1.0f);
  LOWBIT_CHECK(data.size() == 256);
  std::sort(data.begin(), data.end());
  std::array<float, 256> out{};
  std::copy(data.begin(), data.end(), out.begin());
  return out;
}

// Offset of element (r, c) of the internal rows within bitsandbytes' flattened order is r * cols + c;
// the internal block of 64 (or 32) elements at (r, c0) lies in bitsandbytes block (r * cols + c0) /
// blocksize. Block is BlockNF<32>, BlockNF<64> or BlockNFx2 (two blocks of 64).

// Where each element of a block sits (NfNibbleOf): byte, and the shift of its nibble, built once per layout.
template <typename Block>
struct CodeMap {
  std::array<uint8_t, kNfBlockElems<Block>> byte, shift;
};
template <typename Block>
const CodeMap<Block>& CodeMapOf() {
  static const CodeMap<Block> map = [] {
    CodeMap<Block> m{};
    for (int e = 0; e < kNfBlockElems<Block>; ++e) {
      const int nib = NfNibbleOf(static_cast<const Block*>(nullptr), e);
      m.byte[static_cast<size_t>(e)] = static_cast<uint8_t>(nib / 2), m.shift[static_cast<size_t>(e)] = static_cast<uint8_t>(4 * (nib % 2));
    }
    return m;
  }();
  return map;
}

// Rows are multiples of 32 elements, so every internal block starts on a byte of bitsandbytes'
// packing (element e0 even) and covers kE / 2 whole bytes: byte m holds element 2m in its high nibble
// and 2m + 1 in its low one.
template <typename Block>
void PackRows(const uint8_t* packed, std::span<const float> absmax, int64_t rows, int64_t cols, int64_t blocksize,
              uint8_t* out) {
  constexpr int kE = kNfBlockElems<Block>, kSub = kNfBlockAbsmaxes<Block>;
  LOWBIT_CHECK(cols % kE == 0);
  const CodeMap<Block>& map = CodeMapOf<Block>();
  auto* b = reinterpret_cast<Block*>(out);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c0 = 0; c0 < cols; c0 += kE, ++b) {
      const int64_t e0 = r * cols + c0;
      std::memset(b->qs, 0, sizeof(b->qs));
      for (int sub = 0; sub < kSub; ++sub) NfAbsmaxes(*b)[sub] = absmax[static_cast<size_t>((e0 + sub * kE / kSub) / blocksize)];
      const uint8_t* src = packed + e0 / 2;
      for (size_t m = 0; m < kE / 2; ++m) {
        b->qs[map.byte[2 * m]] = static_cast<uint8_t>(b->qs[map.byte[2 * m]] | (src[m] >> 4) << map.shift[2 * m]);
        b->qs[map.byte[2 * m + 1]] = static_cast<uint8_t>(b->qs[map.byte[2 * m + 1]] | (src[m] & 0xF) << map.shift[2 * m + 1]);
      }
    }
  }
}

template <typename Block>
void UnpackRows(const uint8_t* rows_data, int64_t rows, int64_t cols, int64_t blocksize, uint8_t* packed,
                std::span<float> absmax) {
  constexpr int kE = kNfBlockElems<Block>, kSub = kNfBlockAbsmaxes<Block>;
  LOWBIT_CHECK(cols % kE == 0);
  const CodeMap<Block>& map = CodeMapOf<Block>();
  auto* b = reinterpret_cast<const Block*>(rows_data);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c0 = 0; c0 < cols; c0 += kE, ++b) {
      const int64_t e0 = r * cols + c0;
      for (int sub = 0; sub < kSub; ++sub) {
        absmax[static_cast<size_t>((e0 + sub * kE / kSub) / blocksize)] = NfAbsmaxes(*b)[sub];
      }
      uint8_t* dst = packed + e0 / 2;
      for (size_t m = 0; m < kE / 2; ++m) {
        const int hi = (b->qs[map.byte[2 * m]] >> map.shift[2 * m]) & 0xF, lo = (b->qs[map.byte[2 * m + 1]] >> map.shift[2 * m + 1]) & 0xF;
        dst[m] = static_cast<uint8_t>(hi << 4 | lo);
      }
    }
  }
}

}  // namespace

std::string_view Bnb4TypeName(Bnb4Type t) { return t == Bnb4Type::kNf4 ? "nf4" : "fp4"; }

const std::array<float, 16>& Bnb4Levels(Bnb4Type t) { return t == Bnb4Type::kNf4 ? kNf4 : kFp4; }

uint8_t Bnb4Encode(Bnb4Type t, float x) { return t == Bnb4Type::kNf4 ? EncodeNf4(x) : EncodeFp4(x); }

const std::array<float, 256>& BnbDynamicMap() {
  static const std::array<float, 256> map = BuildDynamicMap();
  return map;
}

uint8_t BnbEncode8(const std::array<float, 256>& code, float x) {
  int pivot = 127, upper_pivot = 255, lower_pivot = 0;
  float lower = -1.0f, upper = 1.0f;
  float val = code[127];
  for (int i = 64; i > 0; i >>= 1) {
    if (x > val) {
      lower_pivot = pivot;
      lower = val;
      pivot += i;
    } else {
      upper_pivot = pivot;
      upper = val;
      pivot -= i;
    }
    val = code[static_cast<size_t>(pivot)];
  }
  if (upper_pivot == 255) upper = code[255];
  if (lower_pivot == 0) lower = code[0];
  if (x > val) {
    const float midpoint = (upper + val) * 0.5f;
    return static_cast<uint8_t>(x > midpoint ? upper_pivot : pivot);
  }
  const float midpoint = (lower + val) * 0.5f;
  return static_cast<uint8_t>(x < midpoint ? lower_pivot : pivot);
}

void DecodeBnbNestedAbsmax(std::span<const uint8_t> q, std::span<const float> nested_absmax, std::span<const float> code,
                           float offset, int64_t nested_blocksize, std::span<float> absmax) {
  LOWBIT_CHECK(absmax.size() == q.size() && code.size() == 256 && nested_blocksize > 0);
  for (size_t i = 0; i < q.size(); ++i) {
    const float a = code[q[i]] * nested_absmax[i / static_cast<size_t>(nested_blocksize)];
    absmax[i] = a + offset;
  }
}

Expected<GgmlType> Bnb4RowType(Bnb4Type t, int64_t cols, int64_t blocksize) {
  const bool nf4 = t == Bnb4Type::kNf4;
  if (cols % 128 == 0 && blocksize % 64 == 0) return nf4 ? GgmlType::kNF4G64x2 : GgmlType::kFP4G64x2;
  if (cols % 64 == 0 && blocksize % 64 == 0) return nf4 ? GgmlType::kNF4G64 : GgmlType::kFP4G64;
  if (cols % 32 == 0 && blocksize % 32 == 0) return nf4 ? GgmlType::kNF4G32 : GgmlType::kFP4G32;
  return Errorf("rows of {} columns in blocks of {} do not split into whole blocks of 32 (lowbit's {} kernels need that)",
                cols, blocksize, Bnb4TypeName(t));
}

void PackBnb4Rows(GgmlType type, const uint8_t* packed, std::span<const float> absmax, int64_t rows, int64_t cols,
                  int64_t blocksize, uint8_t* out) {
  LOWBIT_CHECK(IsBnb4Type(type));
  if (IsBnb4PairType(type)) return PackRows<BlockNFx2>(packed, absmax, rows, cols, blocksize, out);
  if (TypeInfo(type).block_size == 64) return PackRows<BlockNF<64>>(packed, absmax, rows, cols, blocksize, out);
  PackRows<BlockNF<32>>(packed, absmax, rows, cols, blocksize, out);
}

void UnpackBnb4Rows(GgmlType type, const uint8_t* rows_data, int64_t rows, int64_t cols, int64_t blocksize,
                    uint8_t* packed, std::span<float> absmax) {
  LOWBIT_CHECK(IsBnb4Type(type));
  if (IsBnb4PairType(type)) return UnpackRows<BlockNFx2>(rows_data, rows, cols, blocksize, packed, absmax);
  if (TypeInfo(type).block_size == 64) return UnpackRows<BlockNF<64>>(rows_data, rows, cols, blocksize, packed, absmax);
  UnpackRows<BlockNF<32>>(rows_data, rows, cols, blocksize, packed, absmax);
}

Expected<GgmlType> Int8RowType(int64_t cols) {
  if (cols % 256 == 0) return GgmlType::kI8R256;
  if (cols % 32 == 0) return GgmlType::kI8R32;
  return Errorf("rows of {} columns do not split into whole blocks of 32 (lowbit's LLM.int8 kernels need that)", cols);
}

namespace {

template <int G>
void PackI8(const int8_t* q, std::span<const float> scb, int64_t rows, int64_t cols, uint8_t* out) {
  auto* b = reinterpret_cast<BlockI8R<G>*>(out);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; c += G, ++b) {
      b->scb = scb[static_cast<size_t>(r)];
      std::memcpy(b->qs, q + r * cols + c, G);
    }
  }
}

template <int G>
void UnpackI8(const uint8_t* rows_data, int64_t rows, int64_t cols, int8_t* q, std::span<float> scb) {
  const auto* b = reinterpret_cast<const BlockI8R<G>*>(rows_data);
  for (int64_t r = 0; r < rows; ++r) {
    scb[static_cast<size_t>(r)] = b->scb;
    for (int64_t c = 0; c < cols; c += G, ++b) std::memcpy(q + r * cols + c, b->qs, G);
  }
}

}  // namespace

void PackInt8Rows(GgmlType type, const int8_t* q, std::span<const float> scb, int64_t rows, int64_t cols, uint8_t* out) {
  LOWBIT_CHECK(IsInt8RowType(type) && cols % TypeInfo(type).block_size == 0);
  if (type == GgmlType::kI8R256) return PackI8<256>(q, scb, rows, cols, out);
  PackI8<32>(q, scb, rows, cols, out);
}

void UnpackInt8Rows(GgmlType type, const uint8_t* rows_data, int64_t rows, int64_t cols, int8_t* q, std::span<float> scb) {
  LOWBIT_CHECK(IsInt8RowType(type) && cols % TypeInfo(type).block_size == 0);
  if (type == GgmlType::kI8R256) return UnpackI8<256>(rows_data, rows, cols, q, scb);
  UnpackI8<32>(rows_data, rows, cols, q, scb);
}

}  // namespace lowbit

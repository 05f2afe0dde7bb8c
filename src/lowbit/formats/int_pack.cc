#include "lowbit/formats/int_pack.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "lowbit/base/check.h"

namespace lowbit {
namespace {

static_assert(std::endian::native == std::endian::little, "packed words are read as little-endian");

uint64_t WordMask(int word_bits) { return word_bits == 64 ? ~uint64_t{0} : (uint64_t{1} << word_bits) - 1; }

// Field k of a chunk held as up to two 64-bit halves (a 96-bit 3-bit chunk, or one word).
uint32_t ChunkField(const uint64_t* w, int off, int bits) {
  const int i = off >> 6, s = off & 63;
  uint64_t v = w[i] >> s;
  if (s + bits > 64) v |= w[i + 1] << (64 - s);
  return static_cast<uint32_t>(v & ((uint64_t{1} << bits) - 1));
}

void SetChunkField(uint64_t* w, int off, int bits, uint64_t v) {
  const int i = off >> 6, s = off & 63;
  w[i] |= v << s;
  if (s + bits > 64) w[i + 1] |= v >> (64 - s);
}

// The chunk's words (at `p`, `stride` bytes apart) as two 64-bit halves of one bit stream.
void LoadChunk(const uint8_t* p, int64_t stride, int64_t words, int word_bits, uint64_t* w) {
  w[0] = w[1] = 0;
  for (int64_t k = 0; k < words; ++k) {
    const int off = static_cast<int>(k) * word_bits;
    SetChunkField(w, off, word_bits, LoadWord(p + k * stride, word_bits));
  }
}

void StoreChunk(uint8_t* p, int64_t stride, int64_t words, int word_bits, const uint64_t* w) {
  for (int64_t k = 0; k < words; ++k) {
    const int off = static_cast<int>(k) * word_bits;
    uint64_t v = w[off >> 6] >> (off & 63);
    if ((off & 63) + word_bits > 64) v |= w[(off >> 6) + 1] << (64 - (off & 63));
    StoreWord(p + k * stride, word_bits, v & WordMask(word_bits));
  }
}

}  // namespace

bool PackingSupported(int bits, int word_bits) {
  if (word_bits != 8 && word_bits != 16 && word_bits != 32 && word_bits != 64) return false;
  if (bits == 3) return word_bits == 32;
  return (bits == 2 || bits == 4 || bits == 8) && bits <= word_bits;
}

int64_t ValuesPerChunk(int bits, int word_bits) { return bits == 3 ? 32 : word_bits / bits; }
int64_t WordsPerChunk(int bits, int /*word_bits*/) { return bits == 3 ? 3 : 1; }

uint64_t LoadWord(const uint8_t* p, int word_bits) {
  uint64_t v = 0;
  std::memcpy(&v, p, static_cast<size_t>(word_bits / 8));
  return v;
}

void StoreWord(uint8_t* p, int word_bits, uint64_t v) { std::memcpy(p, &v, static_cast<size_t>(word_bits / 8)); }

uint64_t OnesPerField(int bits, int word_bits) {
  uint64_t v = 0;
  for (int k = 0; k + bits <= word_bits; k += bits) v |= uint64_t{1} << k;
  return v;
}

void PackRow(const int32_t* values, int64_t n, int bits, int word_bits, uint8_t* words) {
  LOWBIT_CHECK(PackingSupported(bits, word_bits));
  const int64_t vpc = ValuesPerChunk(bits, word_bits), wpc = WordsPerChunk(bits, word_bits);
  LOWBIT_CHECK(n % vpc == 0);
  const int64_t wbytes = word_bits / 8;
  const uint64_t mask = (uint64_t{1} << bits) - 1;
  for (int64_t c = 0; c < n / vpc; ++c) {
    uint64_t w[2] = {0, 0};
    for (int64_t k = 0; k < vpc; ++k) {
      SetChunkField(w, static_cast<int>(k) * bits, bits, static_cast<uint64_t>(values[c * vpc + k]) & mask);
    }
    StoreChunk(words + c * wpc * wbytes, wbytes, wpc, word_bits, w);
  }
}

void UnpackRow(const uint8_t* words, int64_t n, int bits, int word_bits, int32_t* values) {
  LOWBIT_CHECK(PackingSupported(bits, word_bits));
  const int64_t vpc = ValuesPerChunk(bits, word_bits), wpc = WordsPerChunk(bits, word_bits);
  LOWBIT_CHECK(n % vpc == 0);
  const int64_t wbytes = word_bits / 8;
  for (int64_t c = 0; c < n / vpc; ++c) {
    uint64_t w[2];
    LoadChunk(words + c * wpc * wbytes, wbytes, wpc, word_bits, w);
    for (int64_t k = 0; k < vpc; ++k) {
      values[c * vpc + k] = static_cast<int32_t>(ChunkField(w, static_cast<int>(k) * bits, bits));
    }
  }
}

// The columns are transposed one tile of kTileRows outputs x kTileCols inputs at a time through a
// small contiguous buffer: written straight into `codes`, every chunk stored a few bytes into each
// output row, `cols` bytes apart, and with cols a multiple of 4096 those stores fell into the same
// few cache sets. kTileCols is a multiple of every ValuesPerChunk (at most 32).
constexpr int64_t kTileRows = 64, kTileCols = 64;

void PackColumns(const uint8_t* codes, int64_t rows, int64_t cols, int bits, int word_bits, uint8_t* words) {
  LOWBIT_CHECK(PackingSupported(bits, word_bits));
  const int64_t vpc = ValuesPerChunk(bits, word_bits), wpc = WordsPerChunk(bits, word_bits);
  LOWBIT_CHECK(cols % vpc == 0);
  const int64_t wbytes = word_bits / 8, row_stride = rows * wbytes;
  const uint64_t mask = (uint64_t{1} << bits) - 1;
  uint8_t tile[kTileRows][kTileCols];
  for (int64_t r0 = 0; r0 < rows; r0 += kTileRows) {
    const int64_t nr = std::min(rows - r0, kTileRows);
    for (int64_t c0 = 0; c0 < cols; c0 += kTileCols) {
      const int64_t nc = std::min(cols - c0, kTileCols);
      for (int64_t r = 0; r < nr; ++r) std::memcpy(tile[r], codes + (r0 + r) * cols + c0, nc);
      for (int64_t chunk = 0; chunk < nc / vpc; ++chunk) {
        uint8_t* out = words + ((c0 / vpc + chunk) * wpc * rows + r0) * wbytes;
        for (int64_t r = 0; r < nr; ++r) {
          const uint8_t* q = tile[r] + chunk * vpc;
          uint64_t w[2] = {0, 0};
          for (int64_t k = 0; k < vpc; ++k) SetChunkField(w, static_cast<int>(k) * bits, bits, q[k] & mask);
          StoreChunk(out + r * wbytes, row_stride, wpc, word_bits, w);
        }
      }
    }
  }
}

namespace {

// A tile of a 2/4/8-bit qweight: `chunks` rows of words (`chunk_stride` bytes apart), `nr` words
// each, into tile[row][input]; the fixed field count lets the compiler unroll the shifts.
template <int kBits, int kWordBits>
void UnpackTileWords(const uint8_t* in, int64_t nr, int64_t chunks, int64_t chunk_stride, uint8_t (*tile)[64]) {
  constexpr int kValues = kWordBits / kBits;
  constexpr uint64_t kMask = (uint64_t{1} << kBits) - 1;
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    for (int64_t r = 0; r < nr; ++r) {
      const uint64_t w = LoadWord(in + chunk * chunk_stride + r * (kWordBits / 8), kWordBits);
      uint8_t* q = tile[r] + chunk * kValues;
      for (int k = 0; k < kValues; ++k) q[k] = static_cast<uint8_t>((w >> (k * kBits)) & kMask);
    }
  }
}

using UnpackTileFn = void (*)(const uint8_t*, int64_t, int64_t, int64_t, uint8_t (*)[64]);

UnpackTileFn UnpackTileFor(int bits, int word_bits) {
  switch (bits * 100 + word_bits) {
    case 208: return UnpackTileWords<2, 8>;
    case 216: return UnpackTileWords<2, 16>;
    case 232: return UnpackTileWords<2, 32>;
    case 264: return UnpackTileWords<2, 64>;
    case 408: return UnpackTileWords<4, 8>;
    case 416: return UnpackTileWords<4, 16>;
    case 432: return UnpackTileWords<4, 32>;
    case 464: return UnpackTileWords<4, 64>;
    case 808: return UnpackTileWords<8, 8>;
    case 816: return UnpackTileWords<8, 16>;
    case 832: return UnpackTileWords<8, 32>;
    case 864: return UnpackTileWords<8, 64>;
    default: return nullptr;
  }
}

}  // namespace

void UnpackColumns(const uint8_t* words, int64_t rows, int64_t cols, int bits, int word_bits, uint8_t* codes) {
  LOWBIT_CHECK(PackingSupported(bits, word_bits));
  const UnpackTileFn unpack_tile = UnpackTileFor(bits, word_bits);
  const int64_t vpc = ValuesPerChunk(bits, word_bits), wpc = WordsPerChunk(bits, word_bits);
  LOWBIT_CHECK(cols % vpc == 0);
  const int64_t wbytes = word_bits / 8, row_stride = rows * wbytes;
  uint8_t tile[kTileRows][kTileCols];
  for (int64_t r0 = 0; r0 < rows; r0 += kTileRows) {
    const int64_t nr = std::min(rows - r0, kTileRows);
    for (int64_t c0 = 0; c0 < cols; c0 += kTileCols) {
      const int64_t nc = std::min(cols - c0, kTileCols);
      if (unpack_tile != nullptr) {  // 2/4/8-bit: one word per chunk
        unpack_tile(words + ((c0 / vpc) * rows + r0) * wbytes, nr, nc / vpc, row_stride, tile);
      }
      for (int64_t chunk = 0; unpack_tile == nullptr && chunk < nc / vpc; ++chunk) {
        const uint8_t* in = words + ((c0 / vpc + chunk) * wpc * rows + r0) * wbytes;
        for (int64_t r = 0; r < nr; ++r) {
          uint8_t* q = tile[r] + chunk * vpc;
          uint64_t w[2];
          LoadChunk(in + r * wbytes, row_stride, wpc, word_bits, w);
          for (int64_t k = 0; k < vpc; ++k) {
            q[k] = static_cast<uint8_t>(ChunkField(w, static_cast<int>(k) * bits, bits));
          }
        }
      }
      for (int64_t r = 0; r < nr; ++r) std::memcpy(codes + (r0 + r) * cols + c0, tile[r], nc);
    }
  }
}

}  // namespace lowbit

// Bit packing of b-bit integers into little-endian integer words, as GPTQ checkpoints store them.
//
// Consecutive values fill a word from its least significant bit: value k of a word sits at bits
// [k*b, k*b + b). 2-, 4- and 8-bit values never cross a word; 3-bit values (32-bit words only, as in
// every GPTQ tool) form one 96-bit little-endian stream per 3 words: 32 values, value 10 split
// between word 0 (bits 30-31, its low 2 bits) and word 1 (bit 0), value 21 between word 1 (bit 31)
// and word 2 (bits 0-1), the others at 3-bit offsets 0..27, 1..28 and 2..29 of words 0, 1, 2
// (AutoGPTQ qlinear_cuda_old.py pack(), GPTQModel's pack_original and _pack_cols_3bit).
// Word widths: 8, 16, 32 or 64 bits (GPTQModel's pack_dtype int8/int16/int32/int64).
#pragma once

#include <cstdint>

namespace lowbit {

// Whether `bits` values pack into `word_bits` words (2/4/8 into 8..64 with bits <= word_bits; 3 into 32).
bool PackingSupported(int bits, int word_bits);
// The smallest run of values that fills whole words: word_bits / bits values in one word for
// 2/4/8 bits, 32 values in 3 words for 3 bits.
int64_t ValuesPerChunk(int bits, int word_bits);
int64_t WordsPerChunk(int bits, int word_bits);

// Reads / writes one little-endian word of `word_bits` bits.
uint64_t LoadWord(const uint8_t* p, int word_bits);
void StoreWord(uint8_t* p, int word_bits, uint64_t v);
// A word with the value 1 in every field: 0x11111111 for 4-bit fields in 32-bit words.
uint64_t OnesPerField(int bits, int word_bits);

// One run of n values (n a multiple of ValuesPerChunk) <-> n * bits / word_bits consecutive words.
// Values must be < 2^bits (they are masked).
void PackRow(const int32_t* values, int64_t n, int bits, int word_bits, uint8_t* words);
void UnpackRow(const uint8_t* words, int64_t n, int bits, int word_bits, int32_t* values);

// GPTQ's qweight: codes [rows][cols] (row = output, column = input) <-> words
// [cols * bits / word_bits][rows], packed along the input (each output's column of words is a run).
// cols must be a multiple of ValuesPerChunk.
void PackColumns(const uint8_t* codes, int64_t rows, int64_t cols, int bits, int word_bits, uint8_t* words);
void UnpackColumns(const uint8_t* words, int64_t rows, int64_t cols, int bits, int word_bits, uint8_t* codes);

}  // namespace lowbit

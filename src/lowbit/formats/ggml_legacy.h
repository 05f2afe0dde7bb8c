// Legacy (pre-GGUF, 2023) llama.cpp model files: magic 'ggml' (unversioned), 'ggmf' v1 and 'ggjt'
// v1, v2, v3. All little-endian; the magic is a u32, so the file starts with "lmgg", "fmgg" or "tjgg".
//
//   u32 magic; u32 version (not in 'ggml' files);
//   u32 n_vocab, n_embd, n_mult, n_head, n_layer, n_rot, ftype;
//   n_vocab x { u32 len; len bytes; f32 score (not in 'ggml' files) };
//   tensors to the end of the file: { u32 n_dims; u32 name_len; u32 type; u32 ne[n_dims]; name;
//                                     ggjt only: zero padding to a multiple of 32 bytes; data }.
//
// Block layouts of the quantized types changed twice (see LegacyBlockLayout); this reader knows the
// layout each file version used and converts blocks to today's layout (bit for bit where today's
// type can hold the block, else the caller requantizes from DequantizeLegacyBlocks).
// Sources: docs/DESIGN-NOTES.md, "Legacy GGML files".
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "lowbit/base/mapped_file.h"
#include "lowbit/base/status.h"
#include "lowbit/numeric/ggml_type.h"

namespace lowbit {

enum class GgmlLegacyFormat { kGgml, kGgmf, kGgjt };

enum class LegacyBlockLayout {
  // ggml, ggmf and ggjt v1 (before llama.cpp PR #1405, May 2023): Q4_0/Q4_1/Q5_0/Q5_1 pack element
  // 2i in the low nibble of qs[i] and 2i+1 in the high one; Q4_0, Q4_1 and Q8_0 scales are F32.
  kV1,
  // ggjt v2 (PR #1405 until PR #1508): today's nibble order (element j low, j+16 high); Q4_0, Q4_1
  // and Q8_0 scales still F32.
  kV2,
  // ggjt v3 (PR #1508 on): today's blocks, F16 scales.
  kV3,
};

struct GgmlLegacyHparams {
  uint32_t n_vocab = 0, n_embd = 0, n_mult = 0, n_head = 0, n_layer = 0, n_rot = 0, ftype = 0;
};

struct GgmlLegacyTensor {
  std::string name;
  std::vector<uint64_t> dims;  // ne[0] (the row length) first, as GGUF
  GgmlType type = GgmlType::kF32;
  uint64_t offset = 0;          // of the data, in the file
  std::span<const uint8_t> data;
  uint64_t n_elements() const;
};

class GgmlLegacyFile {
 public:
  static Expected<GgmlLegacyFile> Open(const std::string& path);
  static Expected<GgmlLegacyFile> Parse(std::span<const uint8_t> bytes, const std::string& name);

  GgmlLegacyFormat format() const { return format_; }
  uint32_t version() const { return version_; }
  LegacyBlockLayout layout() const { return layout_; }
  std::string FormatName() const;  // "ggjt v3", "ggml (unversioned)"
  const GgmlLegacyHparams& hparams() const { return hp_; }
  // Token texts as stored (old convert.py wrote spaces as ' ', byte tokens as the raw byte, the
  // unknown token as " \u2047 " and control tokens as ""); scores are empty in 'ggml' files.
  const std::vector<std::string>& tokens() const { return tokens_; }
  const std::vector<float>& scores() const { return scores_; }
  bool has_scores() const { return format_ != GgmlLegacyFormat::kGgml; }
  const std::vector<GgmlLegacyTensor>& tensors() const { return tensors_; }
  const GgmlLegacyTensor* FindTensor(const std::string& name) const;
  const std::string& name() const { return name_; }
  const MappedFile& file() const { return map_; }

 private:
  Status ParseAll(std::span<const uint8_t> bytes);
  MappedFile map_;
  std::string name_;
  GgmlLegacyFormat format_ = GgmlLegacyFormat::kGgml;
  uint32_t version_ = 0;
  LegacyBlockLayout layout_ = LegacyBlockLayout::kV1;
  GgmlLegacyHparams hp_;
  std::vector<std::string> tokens_;
  std::vector<float> scores_;
  std::vector<GgmlLegacyTensor> tensors_;
};

// Bytes of one 32-element block of `type` in `layout` (plain types: of one element).
uint64_t LegacyBlockBytes(GgmlType type, LegacyBlockLayout layout);
// Whether a tensor of this type is stored differently in `layout` than today.
bool LegacyLayoutDiffers(GgmlType type, LegacyBlockLayout layout);

// Converts one block (32 elements) of `type` in `layout` to today's block. Returns false when the
// block's F32 scale or min is not exactly an F16 value (today's block cannot hold it); `dst` is then
// unspecified and the caller requantizes the block from DequantizeLegacyBlock.
bool RepackLegacyBlock(GgmlType type, LegacyBlockLayout layout, const uint8_t* src, uint8_t* dst);
// The 32 values of one block, as the ggml of that version dequantized them.
void DequantizeLegacyBlock(GgmlType type, LegacyBlockLayout layout, const uint8_t* src, float* dst);

}  // namespace lowbit

#include "lowbit/formats/ggml_legacy.h"

#include <cstring>
#include <set>

#include <fmt/ranges.h>

#include "lowbit/formats/byte_reader.h"
#include "lowbit/numeric/half.h"

namespace lowbit {
namespace {

constexpr uint32_t kMagicGgml = 0x67676d6c;  // "lmgg" on disk
constexpr uint32_t kMagicGgmf = 0x67676d66;  // "fmgg"
constexpr uint32_t kMagicGgjt = 0x67676a74;  // "tjgg"
constexpr uint32_t kMagicGguf = 0x46554747;  // "GGUF"

// Bounds that no 2023 llama file comes near; they keep hostile headers from asking for absurd
// amounts of work before the byte counts catch them.
constexpr uint32_t kMaxDim = 1u << 24;
constexpr uint32_t kMaxTokenBytes = 1u << 16;
constexpr uint32_t kMaxNameBytes = 255;

bool IsLegacyStorageType(GgmlType t) {
  switch (t) {
    case GgmlType::kF32: case GgmlType::kF16: case GgmlType::kQ4_0: case GgmlType::kQ4_1:
    case GgmlType::kQ5_0: case GgmlType::kQ5_1: case GgmlType::kQ8_0:
      return true;
    default:
      return false;
  }
}

uint16_t LoadU16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
float LoadF32(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, 4);
  return v;
}
void StoreU16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

// F32 -> F16 bits when the F16 value is the same number (bit for bit back), else false.
bool ExactFp16(float f, uint16_t* out) {
  *out = Fp32ToFp16(f);
  return FloatBits(Fp16ToFp32(*out)) == FloatBits(f);
}

// The 32 4-bit codes of a block in element order.
void UnpackNibbles(const uint8_t* qs, bool interleaved, uint8_t q[32]) {
  for (int j = 0; j < 16; ++j) {
    if (interleaved) {
      q[2 * j] = qs[j] & 15;
      q[2 * j + 1] = qs[j] >> 4;
    } else {
      q[j] = qs[j] & 15;
      q[j + 16] = qs[j] >> 4;
    }
  }
}
void PackNibbles(const uint8_t q[32], uint8_t* qs) {
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>(q[j] | (q[j + 16] << 4));
}

}  // namespace

uint64_t GgmlLegacyTensor::n_elements() const {
  uint64_t n = 1;
  for (uint64_t d : dims) n *= d;
  return n;
}

uint64_t LegacyBlockBytes(GgmlType type, LegacyBlockLayout layout) {
  if (layout != LegacyBlockLayout::kV3) {
    if (type == GgmlType::kQ4_0) return 4 + 16;
    if (type == GgmlType::kQ4_1) return 8 + 16;
    if (type == GgmlType::kQ8_0) return 4 + 32;
  }
  return TypeInfo(type).block_bytes;
}

bool LegacyLayoutDiffers(GgmlType type, LegacyBlockLayout layout) {
  switch (type) {
    case GgmlType::kQ4_0: case GgmlType::kQ4_1: case GgmlType::kQ8_0:
      return layout != LegacyBlockLayout::kV3;
    case GgmlType::kQ5_0: case GgmlType::kQ5_1:
      return layout == LegacyBlockLayout::kV1;
    default:
      return false;
  }
}

bool RepackLegacyBlock(GgmlType type, LegacyBlockLayout layout, const uint8_t* src, uint8_t* dst) {
  if (!LegacyLayoutDiffers(type, layout)) {
    std::memcpy(dst, src, TypeInfo(type).block_bytes);
    return true;
  }
  const bool interleaved = layout == LegacyBlockLayout::kV1;
  uint8_t q[32];
  uint16_t d = 0, m = 0;
  switch (type) {
    case GgmlType::kQ4_0:  // {f32 d; qs[16]} -> {f16 d; qs[16]}
      if (!ExactFp16(LoadF32(src), &d)) return false;
      StoreU16(dst, d);
      UnpackNibbles(src + 4, interleaved, q);
      PackNibbles(q, dst + 2);
      return true;
    case GgmlType::kQ4_1:  // {f32 d, m; qs[16]} -> {f16 d, m; qs[16]}
      if (!ExactFp16(LoadF32(src), &d) || !ExactFp16(LoadF32(src + 4), &m)) return false;
      StoreU16(dst, d);
      StoreU16(dst + 2, m);
      UnpackNibbles(src + 8, interleaved, q);
      PackNibbles(q, dst + 4);
      return true;
    case GgmlType::kQ8_0:  // {f32 d; qs[32]} -> {f16 d; qs[32]}
      if (!ExactFp16(LoadF32(src), &d)) return false;
      StoreU16(dst, d);
      std::memcpy(dst + 2, src + 4, 32);
      return true;
    case GgmlType::kQ5_0:    // {f16 d; qh[4]; qs[16]}: qh's bit k is element k's 5th bit in both
    case GgmlType::kQ5_1: {  // {f16 d, m; qh[4]; qs[16]}
      const int head = type == GgmlType::kQ5_0 ? 6 : 8;
      std::memcpy(dst, src, head);
      UnpackNibbles(src + head, interleaved, q);
      PackNibbles(q, dst + head);
      return true;
    }
    default:
      return false;
  }
}

void DequantizeLegacyBlock(GgmlType type, LegacyBlockLayout layout, const uint8_t* src, float* dst) {
  const bool interleaved = layout == LegacyBlockLayout::kV1;
  const bool f32_scales = layout != LegacyBlockLayout::kV3;
  uint8_t q[32];
  switch (type) {
    case GgmlType::kQ4_0: {
      const float d = f32_scales ? LoadF32(src) : Fp16ToFp32(LoadU16(src));
      UnpackNibbles(src + (f32_scales ? 4 : 2), interleaved, q);
      for (int j = 0; j < 32; ++j) dst[j] = static_cast<float>(q[j] - 8) * d;
      return;
    }
    case GgmlType::kQ4_1: {
      const float d = f32_scales ? LoadF32(src) : Fp16ToFp32(LoadU16(src));
      const float m = f32_scales ? LoadF32(src + 4) : Fp16ToFp32(LoadU16(src + 2));
      UnpackNibbles(src + (f32_scales ? 8 : 4), interleaved, q);
      for (int j = 0; j < 32; ++j) dst[j] = static_cast<float>(q[j]) * d + m;
      return;
    }
    case GgmlType::kQ8_0: {
      const float d = f32_scales ? LoadF32(src) : Fp16ToFp32(LoadU16(src));
      const auto* qs = reinterpret_cast<const int8_t*>(src + (f32_scales ? 4 : 2));
      for (int j = 0; j < 32; ++j) dst[j] = static_cast<float>(qs[j]) * d;
      return;
    }
    case GgmlType::kQ5_0:
    case GgmlType::kQ5_1: {
      const bool has_m = type == GgmlType::kQ5_1;
      const float d = Fp16ToFp32(LoadU16(src));
      const float m = has_m ? Fp16ToFp32(LoadU16(src + 2)) : 0.0f;
      uint32_t qh;
      std::memcpy(&qh, src + (has_m ? 4 : 2), 4);
      UnpackNibbles(src + (has_m ? 8 : 6), interleaved, q);
      for (int j = 0; j < 32; ++j) {
        const int code = q[j] | static_cast<int>(((qh >> j) & 1) << 4);
        dst[j] = has_m ? static_cast<float>(code) * d + m : static_cast<float>(code - 16) * d;
      }
      return;
    }
    default:
      std::memset(dst, 0, 32 * sizeof(float));
  }
}

Expected<GgmlLegacyFile> GgmlLegacyFile::Open(const std::string& path) {
  LOWBIT_ASSIGN_OR_RETURN(MappedFile map, MappedFile::Open(path));
  GgmlLegacyFile f;
  f.name_ = path;
  f.map_ = std::move(map);
  LOWBIT_RETURN_IF_ERROR(f.ParseAll(f.map_.bytes()));
  return f;
}

Expected<GgmlLegacyFile> GgmlLegacyFile::Parse(std::span<const uint8_t> bytes, const std::string& name) {
  GgmlLegacyFile f;
  f.name_ = name;
  LOWBIT_RETURN_IF_ERROR(f.ParseAll(bytes));
  return f;
}

std::string GgmlLegacyFile::FormatName() const {
  switch (format_) {
    case GgmlLegacyFormat::kGgml: return "ggml (unversioned)";
    case GgmlLegacyFormat::kGgmf: return "ggmf v" + std::to_string(version_);
    case GgmlLegacyFormat::kGgjt: return "ggjt v" + std::to_string(version_);
  }
  return "?";
}

const GgmlLegacyTensor* GgmlLegacyFile::FindTensor(const std::string& name) const {
  for (const GgmlLegacyTensor& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

Status GgmlLegacyFile::ParseAll(std::span<const uint8_t> bytes) {
  ByteReader r(bytes, name_);
  uint32_t magic = 0;
  LOWBIT_RETURN_IF_ERROR(r.Read(&magic, "magic"));
  if (magic == kMagicGguf) return r.ErrorAt(0, "this is already a GGUF file");
  if (magic == kMagicGgml) {
    format_ = GgmlLegacyFormat::kGgml;
  } else if (magic == kMagicGgmf || magic == kMagicGgjt) {
    format_ = magic == kMagicGgmf ? GgmlLegacyFormat::kGgmf : GgmlLegacyFormat::kGgjt;
    LOWBIT_RETURN_IF_ERROR(r.Read(&version_, "version"));
    const uint32_t max_version = format_ == GgmlLegacyFormat::kGgmf ? 1 : 3;
    if (version_ < 1 || version_ > max_version) {
      return r.ErrorAt(4, "{} file version {} is unknown (lowbit reads {})", magic == kMagicGgmf ? "ggmf" : "ggjt",
                       version_, max_version == 1 ? "v1" : "v1 to v3");
    }
  } else {
    return r.ErrorAt(0, "magic 0x{:08x} is not a legacy llama.cpp file ('ggml', 'ggmf' or 'ggjt')", magic);
  }
  layout_ = format_ != GgmlLegacyFormat::kGgjt || version_ == 1 ? LegacyBlockLayout::kV1
            : version_ == 2                                    ? LegacyBlockLayout::kV2
                                                               : LegacyBlockLayout::kV3;

  const uint64_t hp_at = r.offset();
  uint32_t h[7];
  LOWBIT_RETURN_IF_ERROR(r.Read(&h, "hyperparameters (7 x u32)"));
  hp_ = {h[0], h[1], h[2], h[3], h[4], h[5], h[6]};
  static const char* kNames[] = {"n_vocab", "n_embd", "n_mult", "n_head", "n_layer", "n_rot"};
  for (int i = 0; i < 6; ++i) {
    if (h[i] == 0 || h[i] > kMaxDim) {
      return r.ErrorAt(hp_at + 4 * i, "hyperparameter {} = {} is out of range", kNames[i], h[i]);
    }
  }
  if (hp_.n_embd % hp_.n_head != 0) {
    return r.ErrorAt(hp_at, "n_embd {} is not a multiple of n_head {}", hp_.n_embd, hp_.n_head);
  }
  const uint64_t min_token_bytes = has_scores() ? 8 : 4;
  if (hp_.n_vocab > r.remaining() / min_token_bytes) {
    return r.ErrorAt(hp_at, "n_vocab = {} tokens cannot fit in the {} bytes left", hp_.n_vocab, r.remaining());
  }

  tokens_.resize(hp_.n_vocab);
  if (has_scores()) scores_.resize(hp_.n_vocab);
  for (uint32_t i = 0; i < hp_.n_vocab; ++i) {
    const uint64_t at = r.offset();
    uint32_t len = 0;
    LOWBIT_RETURN_IF_ERROR(r.Read(&len, "token length"));
    if (len > kMaxTokenBytes || len > r.remaining()) {
      return r.ErrorAt(at, "token {} has length {}, but {} bytes are left", i, len, r.remaining());
    }
    std::span<const uint8_t> text;
    LOWBIT_RETURN_IF_ERROR(r.ReadBytes(len, &text, "token text"));
    tokens_[i].assign(reinterpret_cast<const char*>(text.data()), text.size());
    if (has_scores()) LOWBIT_RETURN_IF_ERROR(r.Read(&scores_[i], "token score"));
  }

  std::set<std::string> seen;
  while (r.remaining() > 0) {
    const uint64_t at = r.offset();
    uint32_t th[3];
    LOWBIT_RETURN_IF_ERROR(r.Read(&th, "tensor header (n_dims, name length, type)"));
    const uint32_t n_dims = th[0], name_len = th[1], type_id = th[2];
    if (n_dims < 1 || n_dims > 2) {
      return r.ErrorAt(at, "tensor {} has n_dims = {}; llama files hold 1- and 2-D tensors only", tensors_.size(), n_dims);
    }
    if (name_len == 0 || name_len > kMaxNameBytes) {
      return r.ErrorAt(at + 4, "tensor {} has a name of {} bytes (1 to {} allowed)", tensors_.size(), name_len, kMaxNameBytes);
    }
    uint32_t ne[2] = {1, 1};
    LOWBIT_RETURN_IF_ERROR(r.Read(&ne[0], "tensor dimension"));
    if (n_dims == 2) LOWBIT_RETURN_IF_ERROR(r.Read(&ne[1], "tensor dimension"));
    std::span<const uint8_t> name_bytes;
    LOWBIT_RETURN_IF_ERROR(r.ReadBytes(name_len, &name_bytes, "tensor name"));
    GgmlLegacyTensor t;
    t.name.assign(reinterpret_cast<const char*>(name_bytes.data()), name_bytes.size());
    const GgmlTypeInfo* info = FindGgmlType(type_id);
    if (type_id == 4 || type_id == 5) {
      return r.ErrorAt(at + 8, "tensor '{}' has type {} ({}), which ggml removed in May 2023; convert the model from "
                       "its original weights", t.name, type_id, type_id == 4 ? "Q4_2" : "Q4_3");
    }
    if (info == nullptr || !IsLegacyStorageType(info->type)) {
      return r.ErrorAt(at + 8, "tensor '{}' has type {} ({}); lowbit converts legacy files of F32, F16, Q4_0, Q4_1, "
                       "Q5_0, Q5_1 and Q8_0 tensors", t.name, type_id, info == nullptr ? "unknown" : info->name);
    }
    t.type = info->type;
    for (uint32_t i = 0; i < n_dims; ++i) {
      if (ne[i] == 0 || ne[i] > kMaxDim) {
        return r.ErrorAt(at + 12 + 4 * i, "tensor '{}' has dimension {} = {} (1 to {} allowed)", t.name, i, ne[i], kMaxDim);
      }
      t.dims.push_back(ne[i]);
    }
    if (!seen.insert(t.name).second) return r.ErrorAt(at, "tensor '{}' appears twice", t.name);
    const uint32_t block = info->block_size;
    if (t.dims[0] % block != 0) {
      return r.ErrorAt(at, "tensor '{}' is {} but its rows of {} elements are not whole blocks of {}", t.name,
                       info->name, t.dims[0], block);
    }
    if (format_ == GgmlLegacyFormat::kGgjt) {
      const uint64_t pad = (32 - r.offset() % 32) % 32;
      LOWBIT_RETURN_IF_ERROR(r.Skip(pad, "alignment padding before tensor data"));
    }
    const uint64_t bytes_needed = t.n_elements() / block * LegacyBlockBytes(t.type, layout_);
    t.offset = r.offset();
    if (bytes_needed > r.remaining()) {
      return r.ErrorHere("tensor '{}' ({} [{}]) needs {} bytes of data but the file has {} left (truncated?)", t.name,
                         info->name, fmt::join(t.dims, ", "), bytes_needed, r.remaining());
    }
    LOWBIT_RETURN_IF_ERROR(r.ReadBytes(bytes_needed, &t.data, "tensor data"));
    tensors_.push_back(std::move(t));
  }
  if (tensors_.empty()) return r.ErrorHere("the file holds no tensors after the vocabulary");
  return OkStatus();
}

}  // namespace lowbit

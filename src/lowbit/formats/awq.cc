// AutoAWQ GEMM linear layers (WQLinear_GEMM): quant_checkpoint.h has the layout.
#include <algorithm>
#include <cstring>

#include "lowbit/formats/int_pack.h"
#include "lowbit/formats/quant_checkpoint.h"
#include "lowbit/formats/quant_tensors.h"

namespace lowbit {
namespace {

using namespace quant_detail;  // NOLINT

// Nibble i of a packed word holds output column 8c + kOrder[i] (AutoAWQ's AWQ_ORDER).
constexpr int kOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};
constexpr int64_t kMaxDim = int64_t{1} << 32;

struct AwqGeometry {
  int64_t rows, cols, group_size, groups;
};

Expected<AwqGeometry> MakeAwqGeometry(const std::string& prefix, const ModuleQuant& m, int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0 || rows > kMaxDim || cols > kMaxDim) {
    return Errorf("{}: out_features {} x in_features {} is not a layer shape", prefix, rows, cols);
  }
  if (m.bits != 4) {
    return Errorf("{}: AWQ GEMM holds 4-bit values, but the config gives this module {} bits", prefix, m.bits);
  }
  const int64_t gs = m.group_size == -1 ? cols : m.group_size;
  if (cols % gs != 0) {
    return Errorf("{}: in_features {} is not a multiple of group_size {}: AutoAWQ's GEMM layout has whole groups "
                  "only", prefix, cols, gs);
  }
  if (rows % 8 != 0) {
    return Errorf("{}: out_features {} is not a multiple of 8, the 4-bit values per int32 word of AWQ's packing "
                  "along the outputs", prefix, rows);
  }
  return AwqGeometry{rows, cols, gs, cols / gs};
}

// [n][rows / 8] words -> values [rows][n] transposed into `out` with stride `out_stride` per output
// (codes: out[o * cols + i]; zeros: out[g * rows + o] via stride 1 and row step).
void UnpackAwqRow(const uint8_t* words, int64_t rows, uint8_t* out_per_output, int64_t output_stride) {
  for (int64_t c = 0; c < rows / 8; ++c) {
    uint32_t w;
    std::memcpy(&w, words + 4 * c, 4);
    for (int i = 0; i < 8; ++i) out_per_output[(8 * c + kOrder[i]) * output_stride] = (w >> (4 * i)) & 15;
  }
}

uint32_t PackAwqWord(const uint8_t* values_per_output, int64_t output_stride, int64_t c) {
  uint32_t w = 0;
  for (int i = 0; i < 8; ++i) {
    w |= static_cast<uint32_t>(values_per_output[(8 * c + kOrder[i]) * output_stride] & 15) << (4 * i);
  }
  return w;
}

// codes [rows][cols] <-> qweight [cols][rows / 8], one tile of kTileIn inputs x 8 * kTileWords
// outputs at a time through a small contiguous buffer: written straight into `codes`, the
// transposition strode by `cols` bytes, and with cols a multiple of 4096 every store of a tile fell
// into the same few cache sets (12 ns per weight where the tiled copy takes about 1).
constexpr int64_t kTileIn = 64, kTileWords = 16;

void UnpackAwqCodes(const uint8_t* words, int64_t rows, int64_t cols, uint8_t* codes) {
  const int64_t words_per_row = rows / 8;
  uint8_t tile[8 * kTileWords][kTileIn];  // [output in tile][input in tile]
  for (int64_t i0 = 0; i0 < cols; i0 += kTileIn) {
    const int64_t ni = std::min(cols - i0, kTileIn);
    for (int64_t c0 = 0; c0 < words_per_row; c0 += kTileWords) {
      const int64_t nc = std::min(words_per_row - c0, kTileWords);
      for (int64_t i = 0; i < ni; ++i) {
        for (int64_t c = 0; c < nc; ++c) {
          uint32_t w;
          std::memcpy(&w, words + 4 * ((i0 + i) * words_per_row + c0 + c), 4);
          for (int k = 0; k < 8; ++k) tile[8 * c + kOrder[k]][i] = (w >> (4 * k)) & 15;
        }
      }
      for (int64_t o = 0; o < 8 * nc; ++o) std::memcpy(codes + (8 * c0 + o) * cols + i0, tile[o], ni);
    }
  }
}

void PackAwqCodes(const uint8_t* codes, int64_t rows, int64_t cols, uint8_t* words) {
  const int64_t words_per_row = rows / 8;
  uint8_t tile[8 * kTileWords][kTileIn];
  for (int64_t i0 = 0; i0 < cols; i0 += kTileIn) {
    const int64_t ni = std::min(cols - i0, kTileIn);
    for (int64_t c0 = 0; c0 < words_per_row; c0 += kTileWords) {
      const int64_t nc = std::min(words_per_row - c0, kTileWords);
      for (int64_t o = 0; o < 8 * nc; ++o) std::memcpy(tile[o], codes + (8 * c0 + o) * cols + i0, ni);
      for (int64_t i = 0; i < ni; ++i) {
        for (int64_t c = 0; c < nc; ++c) {
          uint32_t w = 0;
          for (int k = 0; k < 8; ++k) w |= static_cast<uint32_t>(tile[8 * c + kOrder[k]][i] & 15) << (4 * k);
          std::memcpy(words + 4 * ((i0 + i) * words_per_row + c0 + c), &w, 4);
        }
      }
    }
  }
}

}  // namespace

Expected<IntQuantLinear> ReadAwqLinear(const TensorSet& ts, const std::string& prefix, const QuantConfig& cfg,
                                       int64_t expect_rows, int64_t expect_cols) {
  if (cfg.method != QuantMethod::kAwq) return Errorf("{}: the quantization config is GPTQ, not AWQ", prefix);
  LOWBIT_ASSIGN_OR_RETURN(ModuleQuant m, ModuleSettings(cfg, prefix));
  LOWBIT_ASSIGN_OR_RETURN(AwqGeometry g, MakeAwqGeometry(prefix, m, expect_rows, expect_cols));
  const uint64_t rows = g.rows, cols = g.cols, groups = g.groups;
  if (ts.Find(prefix + ".g_idx") != nullptr) {
    return Errorf("{}.g_idx: AWQ GEMM has no g_idx; a tensor set with g_idx is GPTQ (check quant_method)", prefix);
  }
  LOWBIT_ASSIGN_OR_RETURN(const StTensor* qweight, Require(ts, prefix + ".qweight"));
  LOWBIT_RETURN_IF_ERROR(ExpectDtype(*qweight, {StDtype::kI32}));
  if (qweight->shape != std::vector<uint64_t>{cols, rows / 8}) {
    const bool gptq_like = qweight->shape == std::vector<uint64_t>{cols / 8, rows};
    return Errorf("{}: shape {}, but AWQ GEMM's 4-bit packing along the outputs of {} inputs x {} outputs needs {}{}",
                  qweight->name, ShapeString(qweight->shape), cols, rows, ShapeString({cols, rows / 8}),
                  gptq_like ? " (the shape is GPTQ's packing along the inputs: check quant_method)" : "");
  }
  LOWBIT_ASSIGN_OR_RETURN(const StTensor* qzeros, Require(ts, prefix + ".qzeros"));
  LOWBIT_RETURN_IF_ERROR(ExpectDtype(*qzeros, {StDtype::kI32}));
  LOWBIT_RETURN_IF_ERROR(ExpectShape(*qzeros, {groups, rows / 8},
                                     fmt::format("{} of {} outputs packed 8 per int32", Groups(groups), rows)));
  LOWBIT_ASSIGN_OR_RETURN(const StTensor* scales, Require(ts, prefix + ".scales"));
  LOWBIT_ASSIGN_OR_RETURN(ScaleDtype sd, ScaleDtypeOf(*scales));
  LOWBIT_RETURN_IF_ERROR(ExpectShape(*scales, {groups, rows},
                                     fmt::format("{} (group_size {} over {} inputs) x {} outputs", Groups(groups),
                                                 g.group_size, cols, rows)));
  const StTensor* bias = ts.Find(prefix + ".bias");
  if (bias != nullptr) LOWBIT_RETURN_IF_ERROR(ExpectShape(*bias, {rows}, "one bias per output"));

  IntQuantLinear q;
  q.bits = 4;
  q.rows = g.rows;
  q.cols = g.cols;
  q.group_size = g.group_size;
  q.scale_dtype = sd;
  q.g_idx = MonotoneGIdx(g.cols, g.group_size);
  LOWBIT_ASSIGN_OR_RETURN(q.scales, LoadFloats(*scales));
  if (bias != nullptr) {
    LOWBIT_ASSIGN_OR_RETURN(q.bias, LoadFloats(*bias));
  }
  q.codes.resize(rows * cols);
  const int64_t row_bytes = g.rows / 2;
  UnpackAwqCodes(qweight->data.data(), g.rows, g.cols, q.codes.data());
  std::vector<uint8_t> z(rows);
  q.zeros.resize(groups * rows);
  for (int64_t grp = 0; grp < g.groups; ++grp) {
    UnpackAwqRow(qzeros->data.data() + grp * row_bytes, g.rows, z.data(), 1);
    for (int64_t r = 0; r < g.rows; ++r) q.zeros[grp * g.rows + r] = z[r];
  }
  return q;
}

Expected<std::vector<PackedTensor>> PackAwqLinear(const std::string& prefix, const IntQuantLinear& q,
                                                  const QuantConfig& cfg) {
  if (cfg.method != QuantMethod::kAwq) return Errorf("{}: the quantization config is GPTQ, not AWQ", prefix);
  LOWBIT_RETURN_IF_ERROR(CheckWritableConfig(cfg).WithContext(prefix));
  LOWBIT_ASSIGN_OR_RETURN(ModuleQuant m, ModuleSettings(cfg, prefix));
  LOWBIT_RETURN_IF_ERROR(CheckIntQuantLinear(q, prefix));
  LOWBIT_ASSIGN_OR_RETURN(AwqGeometry g, MakeAwqGeometry(prefix, m, q.rows, q.cols));
  if (q.bits != 4) return Errorf("{}: AWQ GEMM holds 4-bit codes, not {}-bit", prefix, q.bits);
  if (q.group_size != g.group_size) {
    return Errorf("{}: the layer has group_size {}, but the config says {}", prefix, q.group_size, m.group_size);
  }
  if (!q.monotone()) {
    return Errorf("{}: AWQ GEMM has contiguous groups only; this layer has an act-order g_idx", prefix);
  }
  for (size_t i = 0; i < q.zeros.size(); ++i) {
    if (q.zeros[i] > 15) {
      return Errorf("{}: zero point {} of group {} row {} does not fit AWQ's 4-bit field", prefix, q.zeros[i],
                    i / q.rows, i % q.rows);
    }
  }
  if (q.scale_dtype != ScaleDtype::kF16) {
    return Errorf("{}: AutoAWQ stores fp16 scales, but this layer's are {}; round them to fp16 before choosing "
                  "the codes", prefix, ScaleDtypeName(q.scale_dtype));
  }
  LOWBIT_RETURN_IF_ERROR(CheckScalesRepresentable(q, prefix));

  const uint64_t rows = g.rows, cols = g.cols, groups = g.groups;
  std::vector<uint8_t> qweight(cols * rows / 2);
  PackAwqCodes(q.codes.data(), g.rows, g.cols, qweight.data());
  std::vector<uint8_t> qzeros(groups * rows / 2);
  std::vector<uint8_t> z(rows);
  for (int64_t grp = 0; grp < g.groups; ++grp) {
    for (int64_t r = 0; r < g.rows; ++r) z[r] = static_cast<uint8_t>(q.zeros[grp * g.rows + r]);
    for (int64_t c = 0; c < g.rows / 8; ++c) {
      const uint32_t word = PackAwqWord(z.data(), 1, c);
      std::memcpy(qzeros.data() + grp * (g.rows / 2) + 4 * c, &word, 4);
    }
  }
  std::vector<PackedTensor> out;
  out.push_back({prefix + ".qweight", StDtype::kI32, {cols, rows / 8}, std::move(qweight)});
  out.push_back({prefix + ".qzeros", StDtype::kI32, {groups, rows / 8}, std::move(qzeros)});
  out.push_back({prefix + ".scales", StDtype::kF16, {groups, rows}, EncodeFloats(q.scales, ScaleDtype::kF16)});
  if (!q.bias.empty()) out.push_back({prefix + ".bias", StDtype::kF16, {rows}, EncodeFloats(q.bias, ScaleDtype::kF16)});
  return out;
}

Status AddAwqLinear(SafetensorsWriter& w, const std::string& prefix, const IntQuantLinear& q, const QuantConfig& cfg) {
  LOWBIT_ASSIGN_OR_RETURN(std::vector<PackedTensor> tensors, PackAwqLinear(prefix, q, cfg));
  return AddPacked(w, std::move(tensors));
}

}  // namespace lowbit

#include "lowbit/pipeline/quant_linear.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "lowbit/formats/quant_checkpoint.h"
#include "lowbit/numeric/blocks.h"
#include "lowbit/numeric/dequant.h"
#include "lowbit/numeric/grouped.h"
#include "lowbit/numeric/half.h"
#include "lowbit/pipeline/convert.h"
#include "lowbit/quant/quantize.h"

namespace lowbit {
namespace {

bool IsF16Value(float v) { return ScaleRepresentable(v, ScaleDtype::kF16); }

// The (scale, zero) of row r is one pair over columns [c0, c0 + 32), and the scale is an fp16 value.
bool UniformBlock(const IntQuantLinear& q, int64_t r, int64_t c0) {
  const int64_t g0 = q.g_idx[c0];
  const float s = q.scale(g0, r);
  const int32_t z = q.zero(g0, r);
  if (!IsF16Value(s)) return false;
  for (int64_t c = c0 + 1; c < c0 + 32; ++c) {
    const int64_t g = q.g_idx[c];
    if (g == g0) continue;
    if (std::memcmp(&q.scales[g * q.rows + r], &s, sizeof(float)) != 0 || q.zero(g, r) != z) return false;
  }
  return true;
}

// Range of q - z over row r's block starting at c0 (the block is uniform).
void BlockRange(const IntQuantLinear& q, int64_t r, int64_t c0, int* lo, int* hi) {
  const int32_t z = q.zero(q.g_idx[c0], r);
  int mn = 1 << 30, mx = -(1 << 30);
  for (int64_t c = c0; c < c0 + 32; ++c) {
    const int v = static_cast<int>(q.code(r, c)) - z;
    mn = std::min(mn, v);
    mx = std::max(mx, v);
  }
  *lo = mn;
  *hi = mx;
}

void DequantRows(const IntQuantLinear& q, float* out) {
  for (int64_t r = 0; r < q.rows; ++r) q.DequantizeRow(r, out + r * q.cols);
}

}  // namespace

void UnpermuteLinearRows(IntQuantLinear& q, uint32_t n_heads) {
  if (n_heads == 0) return;
  const auto rows = static_cast<uint64_t>(q.rows);
  std::vector<int64_t> src(rows);
  for (uint64_t r = 0; r < rows; ++r) src[r] = static_cast<int64_t>(UnpermuteSourceRow(r, rows, n_heads));
  std::vector<uint8_t> codes(q.codes.size());
  for (int64_t r = 0; r < q.rows; ++r) std::memcpy(&codes[r * q.cols], &q.codes[src[r] * q.cols], q.cols);
  q.codes = std::move(codes);
  std::vector<float> scales(q.scales.size());
  std::vector<int32_t> zeros(q.zeros.size());
  for (int64_t g = 0; g < q.n_groups(); ++g) {
    for (int64_t r = 0; r < q.rows; ++r) {
      scales[g * q.rows + r] = q.scales[g * q.rows + src[r]];
      zeros[g * q.rows + r] = q.zeros[g * q.rows + src[r]];
    }
  }
  q.scales = std::move(scales);
  q.zeros = std::move(zeros);
  if (!q.bias.empty()) {
    std::vector<float> bias(q.bias.size());
    for (int64_t r = 0; r < q.rows; ++r) bias[r] = q.bias[src[r]];
    q.bias = std::move(bias);
  }
}

Expected<IntQuantLinear> ReadPlannedLinear(const QuantizedSource& s) {
  Expected<IntQuantLinear> read = ReadQuantizedLinear(*s.tensors, s.prefix, *s.config, s.rows, s.cols);
  if (!read.ok()) return Errorf("{}: {}", s.where, read.status().message());
  IntQuantLinear q = std::move(*read);
  for (float b : q.bias) {
    if (b != 0.0f) {
      return Errorf("{}: {}.bias: a nonzero bias on a quantized linear, which a Llama model does not have; "
                    "lowbit would drop it", s.where, s.prefix);
    }
  }
  q.bias.clear();
  UnpermuteLinearRows(q, s.unpermute_heads);
  return q;
}

uint64_t NativeBytes(int bits, int64_t rows, int64_t cols, int64_t group_size) {
  auto l = PlanGrouped(bits, cols, group_size <= 0 ? cols : group_size);
  return l.ok() ? l->row_bytes() * static_cast<uint64_t>(rows) : 0;
}

Expected<NativeWeight> ToNativeWeight(const IntQuantLinear& q, std::span<uint8_t> dst) {
  NativeWeight w;
  w.rows = q.rows;
  auto own = [&w](size_t bytes) {
    auto buf = std::make_shared<AlignedBuffer>(bytes);
    w.data = buf->data();
    w.owner = buf;
    return buf->data();
  };
  auto as_f32 = [&](std::string why) {
    w.type = GgmlType::kF32;
    w.stored_cols = q.cols;
    w.x_map.clear();
    DequantRows(q, reinterpret_cast<float*>(own(static_cast<size_t>(q.rows * q.cols) * sizeof(float))));
    w.note = std::move(why);
    return w;
  };
  for (size_t i = 0; i < q.scales.size(); ++i) {
    if (!IsF16Value(q.scales[i])) {
      return as_f32(fmt::format("its {} scale {} is no fp16 value (the grouped types store fp16 scales)",
                                ScaleDtypeName(q.scale_dtype), q.scales[i]));
    }
  }
  // Columns sorted by group (stable: ascending within a group), and each group's length.
  const int64_t ng = q.n_groups();
  std::vector<int64_t> group_cols(static_cast<size_t>(ng), 0);
  for (int32_t g : q.g_idx) ++group_cols[static_cast<size_t>(g)];
  const bool monotone = q.monotone();
  std::vector<int32_t> perm(static_cast<size_t>(q.cols));
  std::iota(perm.begin(), perm.end(), 0);
  if (!monotone) std::stable_sort(perm.begin(), perm.end(), [&](int32_t a, int32_t b) { return q.g_idx[a] < q.g_idx[b]; });
  auto layout = PlanGrouped(q.bits, group_cols, q.group_size);
  if (!layout.ok()) return as_f32(layout.status().message());
  std::vector<uint8_t> codes;
  const uint8_t* src = q.codes.data();
  if (!monotone) {
    codes.resize(q.codes.size());
    for (int64_t r = 0; r < q.rows; ++r) {
      for (int64_t j = 0; j < q.cols; ++j) codes[r * q.cols + j] = q.codes[r * q.cols + perm[j]];
    }
    src = codes.data();
  }
  std::vector<uint16_t> d(q.scales.size());
  for (size_t i = 0; i < d.size(); ++i) d[i] = Fp32ToFp16(q.scales[i]);
  const auto bytes = static_cast<size_t>(layout->row_bytes() * static_cast<uint64_t>(q.rows));
  uint8_t* out = nullptr;
  if (dst.size() == bytes) {
    out = dst.data();
    w.data = out;
  } else {
    out = own(bytes);
  }
  if (Status s = PackGroupedRows(*layout, src, d.data(), q.zeros.data(), q.rows, out); !s.ok()) {
    w.owner.reset();
    return as_f32(s.message());
  }
  w.type = layout->type;
  w.stored_cols = layout->stored_cols;
  if (!monotone || layout->padded()) {
    w.x_map = layout->ColumnMap();
    for (int32_t& m : w.x_map) m = m < 0 ? -1 : perm[m];
  }
  return w;
}

GgufChoice ChooseGgufType(const IntQuantLinear& q, GgmlType fallback) {
  GgufChoice c;
  auto fall = [&](std::string why) {
    const int64_t bs = TypeInfo(fallback).block_size;
    c.type = q.cols % bs == 0 ? fallback : GgmlType::kF16;
    c.exact = false;
    c.why = std::move(why);
    return c;
  };
  if (q.cols % 32 != 0) return fall(fmt::format("{} columns are no whole 32-column blocks", q.cols));
  bool q4_0 = q.bits <= 4, q8_0 = true;
  for (int64_t r = 0; r < q.rows; ++r) {
    for (int64_t c0 = 0; c0 < q.cols; c0 += 32) {
      if (!UniformBlock(q, r, c0)) {
        const bool f16 = IsF16Value(q.scale(q.g_idx[c0], r));
        return fall(f16 ? fmt::format("row {} columns {}..{} span groups of different scales or zero points{}", r, c0,
                                      c0 + 31, q.monotone() ? "" : " (act-order)")
                        : fmt::format("row {}: scale {} is no fp16 value", r, q.scale(q.g_idx[c0], r)));
      }
      int lo = 0, hi = 0;
      BlockRange(q, r, c0, &lo, &hi);
      q4_0 &= lo >= -8 && hi <= 7;
      q8_0 &= lo >= -128 && hi <= 127;
    }
  }
  if (q4_0) return {GgmlType::kQ4_0, true, true, ""};
  if (q.bits <= 4) {
    // Q4_1's min m = fp16(-s * z); exact only when every m is.
    bool exact = true;
    for (int64_t g = 0; g < q.n_groups() && exact; ++g) {
      for (int64_t r = 0; r < q.rows && exact; ++r) exact = IsF16Value(-q.scale(g, r) * static_cast<float>(q.zero(g, r)));
    }
    return {GgmlType::kQ4_1, exact, true, exact ? "" : "Q4_1's min rounded to fp16"};
  }
  if (q8_0) return {GgmlType::kQ8_0, true, true, ""};
  return fall("codes minus zero points leave Q8_0's -128..127");
}

Status EncodeGgufRows(const IntQuantLinear& q, const GgufChoice& choice, std::span<uint8_t> out) {
  const GgmlType type = choice.type;
  const uint64_t row_bytes = *RowBytes(type, static_cast<uint64_t>(q.cols));
  if (out.size() != row_bytes * static_cast<uint64_t>(q.rows)) return Errorf("EncodeGgufRows: output of {} bytes", out.size());
  const int64_t nb = q.cols / 32;
  switch (choice.from_codes ? type : GgmlType::kF32) {
    case GgmlType::kQ4_0:
    case GgmlType::kQ8_0:
      for (int64_t r = 0; r < q.rows; ++r) {
        for (int64_t b = 0; b < nb; ++b) {
          const int64_t c0 = b * 32;
          if (!UniformBlock(q, r, c0)) return Errorf("row {} columns {}..{}: not one fp16 scale and zero point", r, c0, c0 + 31);
          const int64_t g = q.g_idx[c0];
          const uint16_t d = Fp32ToFp16(q.scale(g, r));
          const int32_t z = q.zero(g, r);
          uint8_t* dst = out.data() + r * row_bytes;
          if (type == GgmlType::kQ4_0) {
            auto* blk = reinterpret_cast<BlockQ4_0*>(dst) + b;
            blk->d = d;
            for (int j = 0; j < 16; ++j) {
              const int lo = q.code(r, c0 + j) - z + 8, hi = q.code(r, c0 + j + 16) - z + 8;
              if (lo < 0 || lo > 15 || hi < 0 || hi > 15) return Errorf("row {} block {}: codes out of Q4_0's range", r, b);
              blk->qs[j] = static_cast<uint8_t>(lo | (hi << 4));
            }
          } else {
            auto* blk = reinterpret_cast<BlockQ8_0*>(dst) + b;
            blk->d = d;
            for (int j = 0; j < 32; ++j) {
              const int v = q.code(r, c0 + j) - z;
              if (v < -128 || v > 127) return Errorf("row {} block {}: codes out of Q8_0's range", r, b);
              blk->qs[j] = static_cast<int8_t>(v);
            }
          }
        }
      }
      return OkStatus();
    case GgmlType::kQ4_1:
      for (int64_t r = 0; r < q.rows; ++r) {
        for (int64_t b = 0; b < nb; ++b) {
          const int64_t c0 = b * 32;
          if (!UniformBlock(q, r, c0)) return Errorf("row {} columns {}..{}: not one fp16 scale and zero point", r, c0, c0 + 31);
          const int64_t g = q.g_idx[c0];
          auto* blk = reinterpret_cast<BlockQ4_1*>(out.data() + r * row_bytes) + b;
          blk->d = Fp32ToFp16(q.scale(g, r));
          blk->m = Fp32ToFp16(-q.scale(g, r) * static_cast<float>(q.zero(g, r)));
          for (int j = 0; j < 16; ++j) {
            const int lo = q.code(r, c0 + j), hi = q.code(r, c0 + j + 16);
            if (lo > 15 || hi > 15) return Errorf("row {} block {}: codes wider than Q4_1's 4 bits", r, b);
            blk->qs[j] = static_cast<uint8_t>(lo | (hi << 4));
          }
        }
      }
      return OkStatus();
    default: break;
  }
  std::vector<float> row(static_cast<size_t>(q.cols));
  if (type == GgmlType::kF32 || type == GgmlType::kF16 || type == GgmlType::kBF16) {
    for (int64_t r = 0; r < q.rows; ++r) {
      q.DequantizeRow(r, row.data());
      uint8_t* dst = out.data() + r * row_bytes;
      if (type == GgmlType::kF32) std::memcpy(dst, row.data(), row_bytes);
      for (int64_t c = 0; c < q.cols && type != GgmlType::kF32; ++c) {
        const uint16_t h = type == GgmlType::kF16 ? Fp32ToFp16(row[c]) : Fp32ToBf16(row[c]);
        std::memcpy(dst + 2 * c, &h, 2);
      }
    }
    return OkStatus();
  }
  FromFloatFn from = FromFloatFor(type);
  if (from == nullptr) return Errorf("lowbit cannot write {} tensors", TypeInfo(type).name);
  if (q.cols % TypeInfo(type).block_size != 0) {
    return Errorf("{} columns are no whole {} blocks", q.cols, TypeInfo(type).name);
  }
  for (int64_t r = 0; r < q.rows; ++r) {
    q.DequantizeRow(r, row.data());
    from(row.data(), out.data() + r * row_bytes, q.cols, nullptr);
  }
  return OkStatus();
}

AddedError MeasureAddedError(const IntQuantLinear& q, GgmlType type, std::span<const uint8_t> rows) {
  AddedError e;
  const uint64_t row_bytes = *RowBytes(type, static_cast<uint64_t>(q.cols));
  ToFloatFn to = ToFloatFor(type);
  std::vector<float> want(static_cast<size_t>(q.cols)), got(static_cast<size_t>(q.cols));
  double se = 0, sw = 0;
  for (int64_t r = 0; r < q.rows; ++r) {
    q.DequantizeRow(r, want.data());
    to(rows.data() + r * row_bytes, got.data(), q.cols);
    for (int64_t c = 0; c < q.cols; ++c) {
      const double d = static_cast<double>(got[c]) - want[c];
      e.max_abs = std::max(e.max_abs, std::fabs(d));
      se += d * d;
      sw += static_cast<double>(want[c]) * want[c];
      e.differing += std::memcmp(&got[c], &want[c], sizeof(float)) != 0;
    }
  }
  const double n = static_cast<double>(q.rows * q.cols);
  e.rms = std::sqrt(se / n);
  e.weight_rms = std::sqrt(sw / n);
  return e;
}

}  // namespace lowbit

#include "lowbit/formats/int_quant.h"

#include <cmath>

#include "lowbit/numeric/half.h"

namespace lowbit {

std::string_view ScaleDtypeName(ScaleDtype d) {
  switch (d) {
    case ScaleDtype::kF16: return "F16";
    case ScaleDtype::kBF16: return "BF16";
    case ScaleDtype::kF32: return "F32";
  }
  return "?";
}

bool ScaleRepresentable(float v, ScaleDtype d) {
  if (std::isnan(v)) return false;
  switch (d) {
    case ScaleDtype::kF16: return FloatBits(Fp16ToFp32(Fp32ToFp16(v))) == FloatBits(v);
    case ScaleDtype::kBF16: return FloatBits(Bf16ToFp32(Fp32ToBf16(v))) == FloatBits(v);
    case ScaleDtype::kF32: return true;
  }
  return false;
}

void IntQuantLinear::DequantizeRow(int64_t r, float* out) const {
  const uint8_t* q = codes.data() + r * cols;
  for (int64_t c = 0; c < cols; ++c) {
    const int64_t g = g_idx[c];
    out[c] = static_cast<float>(static_cast<int32_t>(q[c]) - zeros[g * rows + r]) * scales[g * rows + r];
  }
}

bool IntQuantLinear::monotone() const {
  for (int64_t c = 0; c < cols; ++c) {
    if (g_idx[c] != c / group_size) return false;
  }
  return true;
}

std::vector<int32_t> MonotoneGIdx(int64_t cols, int64_t group_size) {
  std::vector<int32_t> g(static_cast<size_t>(cols));
  for (int64_t c = 0; c < cols; ++c) g[c] = static_cast<int32_t>(c / group_size);
  return g;
}

Status CheckIntQuantLinear(const IntQuantLinear& q, std::string_view what) {
  if (q.bits != 2 && q.bits != 3 && q.bits != 4 && q.bits != 8) {
    return Errorf("{}: bits {} is not one of 2, 3, 4, 8", what, q.bits);
  }
  if (q.rows <= 0 || q.cols <= 0) return Errorf("{}: shape {} x {} is empty", what, q.rows, q.cols);
  if (q.group_size <= 0 || q.group_size > q.cols) {
    return Errorf("{}: group_size {} must be in 1..cols ({})", what, q.group_size, q.cols);
  }
  const int64_t ng = q.n_groups();
  auto size_error = [&](const char* field, size_t have, int64_t want) {
    return Errorf("{}: {} holds {} values, expected {}", what, field, have, want);
  };
  if (static_cast<int64_t>(q.codes.size()) != q.rows * q.cols) {
    return size_error("codes", q.codes.size(), q.rows * q.cols);
  }
  if (static_cast<int64_t>(q.scales.size()) != ng * q.rows) return size_error("scales", q.scales.size(), ng * q.rows);
  if (static_cast<int64_t>(q.zeros.size()) != ng * q.rows) return size_error("zeros", q.zeros.size(), ng * q.rows);
  if (static_cast<int64_t>(q.g_idx.size()) != q.cols) return size_error("g_idx", q.g_idx.size(), q.cols);
  if (!q.bias.empty() && static_cast<int64_t>(q.bias.size()) != q.rows) {
    return size_error("bias", q.bias.size(), q.rows);
  }
  const int32_t levels = 1 << q.bits;
  for (int64_t i = 0; i < q.rows * q.cols; ++i) {
    if (q.codes[i] >= levels) {
      return Errorf("{}: code {} at row {} column {} does not fit {} bits", what, q.codes[i], i / q.cols,
                    i % q.cols, q.bits);
    }
  }
  for (int64_t i = 0; i < ng * q.rows; ++i) {
    if (q.zeros[i] < 0 || q.zeros[i] > levels) {
      return Errorf("{}: zero point {} of group {} row {} is outside 0..{}", what, q.zeros[i], i / q.rows,
                    i % q.rows, levels);
    }
    if (!std::isfinite(q.scales[i])) {
      return Errorf("{}: scale of group {} row {} is {}", what, i / q.rows, i % q.rows, q.scales[i]);
    }
  }
  for (size_t i = 0; i < q.bias.size(); ++i) {
    if (!std::isfinite(q.bias[i])) return Errorf("{}: bias[{}] is {}", what, i, q.bias[i]);
  }
  std::vector<int64_t> count(static_cast<size_t>(ng), 0);
  for (int64_t c = 0; c < q.cols; ++c) {
    if (q.g_idx[c] < 0 || q.g_idx[c] >= ng) {
      return Errorf("{}: g_idx[{}] = {} is outside 0..{}", what, c, q.g_idx[c], ng - 1);
    }
    ++count[q.g_idx[c]];
  }
  for (int64_t g = 0; g < ng; ++g) {
    const int64_t want = g + 1 < ng ? q.group_size : q.cols - (ng - 1) * q.group_size;
    if (count[g] != want) {
      return Errorf("{}: g_idx puts {} columns in group {}; groups of {} columns over {} columns need {}",
                    what, count[g], g, q.group_size, q.cols, want);
    }
  }
  return OkStatus();
}

}  // namespace lowbit

#include "lowbit/formats/quant_tensors.h"

#include <fmt/ranges.h>

#include <cmath>
#include <cstring>

#include "lowbit/base/check.h"
#include "lowbit/numeric/half.h"

namespace lowbit::quant_detail {

std::string ShapeString(const std::vector<uint64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

std::string Groups(uint64_t n) { return fmt::format("{} group{}", n, n == 1 ? "" : "s"); }

StDtype IntDtype(int word_bits) {
  switch (word_bits) {
    case 8: return StDtype::kI8;
    case 16: return StDtype::kI16;
    case 64: return StDtype::kI64;
    default: return StDtype::kI32;
  }
}

Expected<const StTensor*> Require(const TensorSet& ts, const std::string& name) {
  const StTensor* t = ts.Find(name);
  if (t == nullptr) return Errorf("{}: tensor is missing", name);
  return t;
}

Status ExpectDtype(const StTensor& t, std::initializer_list<StDtype> allowed) {
  for (StDtype d : allowed) {
    if (t.dtype == d) return OkStatus();
  }
  std::string names;
  for (StDtype d : allowed) names += (names.empty() ? "" : " or ") + std::string(StDtypeName(d));
  return Errorf("{}: dtype {}, expected {}", t.name, StDtypeName(t.dtype), names);
}

Status ExpectShape(const StTensor& t, const std::vector<uint64_t>& want, std::string_view why) {
  if (t.shape == want) return OkStatus();
  return Errorf("{}: shape {}, but {} needs {}", t.name, ShapeString(t.shape), why, ShapeString(want));
}

Expected<ScaleDtype> ScaleDtypeOf(const StTensor& t) {
  switch (t.dtype) {
    case StDtype::kF16: return ScaleDtype::kF16;
    case StDtype::kBF16: return ScaleDtype::kBF16;
    case StDtype::kF32: return ScaleDtype::kF32;
    default: return Errorf("{}: dtype {}, expected F16, BF16 or F32", t.name, StDtypeName(t.dtype));
  }
}

StDtype StDtypeOf(ScaleDtype d) {
  switch (d) {
    case ScaleDtype::kF16: return StDtype::kF16;
    case ScaleDtype::kBF16: return StDtype::kBF16;
    case ScaleDtype::kF32: return StDtype::kF32;
  }
  return StDtype::kF32;
}

Expected<std::vector<float>> LoadFloats(const StTensor& t) {
  LOWBIT_ASSIGN_OR_RETURN(ScaleDtype d, ScaleDtypeOf(t));
  const uint64_t n = t.n_elements();
  std::vector<float> out(n);
  const uint8_t* p = t.data.data();
  for (uint64_t i = 0; i < n; ++i) {
    if (d == ScaleDtype::kF32) {
      std::memcpy(&out[i], p + 4 * i, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      out[i] = d == ScaleDtype::kF16 ? Fp16ToFp32(h) : Bf16ToFp32(h);
    }
    if (!std::isfinite(out[i])) {
      const uint64_t cols = t.shape.size() == 2 ? t.shape[1] : n;
      return t.shape.size() == 2 ? Errorf("{}: value [{}, {}] is {}", t.name, i / cols, i % cols, out[i])
                                 : Errorf("{}: value [{}] is {}", t.name, i, out[i]);
    }
  }
  return out;
}

std::vector<uint8_t> EncodeFloats(const std::vector<float>& v, ScaleDtype d) {
  const size_t width = d == ScaleDtype::kF32 ? 4 : 2;
  std::vector<uint8_t> out(v.size() * width);
  for (size_t i = 0; i < v.size(); ++i) {
    if (d == ScaleDtype::kF32) {
      std::memcpy(out.data() + 4 * i, &v[i], 4);
    } else {
      const uint16_t h = d == ScaleDtype::kF16 ? Fp32ToFp16(v[i]) : Fp32ToBf16(v[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return out;
}

Status CheckScalesRepresentable(const IntQuantLinear& q, std::string_view what) {
  for (size_t i = 0; i < q.scales.size(); ++i) {
    if (!ScaleRepresentable(q.scales[i], q.scale_dtype)) {
      return Errorf("{}: scale {} of group {} row {} is not exactly representable in {}; round the scales to "
                    "{} before choosing the codes", what, q.scales[i], i / q.rows, i % q.rows,
                    ScaleDtypeName(q.scale_dtype), ScaleDtypeName(q.scale_dtype));
    }
  }
  return OkStatus();
}

Expected<ModuleQuant> ModuleSettings(const QuantConfig& c, const std::string& prefix) {
  LOWBIT_ASSIGN_OR_RETURN(std::optional<ModuleQuant> m, c.ForModule(prefix));
  if (!m) {
    return Errorf("{}: the quantization config leaves this module unquantized (modules_to_not_convert, a "
                  "dynamic \"-:\" rule, or an lm_head without lm_head: true); it is a float {}.weight",
                  prefix, prefix);
  }
  return *m;
}

Status AddPacked(SafetensorsWriter& w, std::vector<PackedTensor> tensors) {
  for (PackedTensor& t : tensors) {
    auto data = std::make_shared<const std::vector<uint8_t>>(std::move(t.bytes));
    LOWBIT_RETURN_IF_ERROR(w.Add(t.name, t.dtype, std::move(t.shape), [data](std::span<uint8_t> out) {
      LOWBIT_CHECK(out.size() == data->size());
      std::memcpy(out.data(), data->data(), out.size());
      return OkStatus();
    }));
  }
  return OkStatus();
}

}  // namespace lowbit::quant_detail

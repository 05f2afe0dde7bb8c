// Internal helpers shared by the GPTQ and AWQ readers and writers (quant_checkpoint.h): tensor
// lookup with one-line errors, dtype and shape checks, float conversions of scales and bias.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/formats/int_quant.h"
#include "lowbit/formats/quant_checkpoint.h"
#include "lowbit/formats/safetensors.h"

namespace lowbit::quant_detail {

std::string ShapeString(const std::vector<uint64_t>& shape);
// "1 group", "3 groups".
std::string Groups(uint64_t n);
// The signed integer dtype of a pack width (I8 .. I64).
StDtype IntDtype(int word_bits);

Expected<const StTensor*> Require(const TensorSet& ts, const std::string& name);
Status ExpectDtype(const StTensor& t, std::initializer_list<StDtype> allowed);
// `why` explains where the wanted shape comes from ("4-bit values of 288 inputs in int32 words").
Status ExpectShape(const StTensor& t, const std::vector<uint64_t>& want, std::string_view why);

// F16 / BF16 / F32 tensors as floats; every value finite.
Expected<std::vector<float>> LoadFloats(const StTensor& t);
Expected<ScaleDtype> ScaleDtypeOf(const StTensor& t);
StDtype StDtypeOf(ScaleDtype d);
// Encodes floats in `d` (fp16/bf16 round to nearest even).
std::vector<uint8_t> EncodeFloats(const std::vector<float>& v, ScaleDtype d);
// The first scale that `d` cannot hold exactly, as an error naming `what` and [group, row].
Status CheckScalesRepresentable(const IntQuantLinear& q, std::string_view what);

// The module's settings, or an error when the config leaves it unquantized.
Expected<ModuleQuant> ModuleSettings(const QuantConfig& c, const std::string& prefix);

// Adds tensors whose bytes are already computed (the writer keeps them until Write).
Status AddPacked(SafetensorsWriter& w, std::vector<PackedTensor> tensors);

}  // namespace lowbit::quant_detail

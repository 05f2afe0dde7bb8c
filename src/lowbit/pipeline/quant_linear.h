// The quantized linears of a GPTQ / AWQ Hugging Face folder on their way into lowbit: planned by
// PlanConversion (convert.h) as lazy sources, then either turned into the native grouped-integer rows
// the kernels run (`run`, `perplexity`, `bench -m DIR`: ToNativeWeight) or into ggml blocks for a
// GGUF file (`convert`: ChooseGgufType + EncodeGgufRows), exactly wherever a type can hold the values.
//
// Exactness rules (each proved bit for bit by tests/pipeline/quant_folder_run_test.cc and
// quant_folder_convert_test.cc; IntQuantLinear::value is s * (q - z), one rounding of an exact
// product):
//   native W types   fp16(d) * (q - z): exact when every scale is an fp16 value (GPTQ/AWQ store fp16;
//                    bf16/f32 scales that fp16 cannot hold are dequantized to F32 instead, with a note).
//   Q4_0             d * (q4 - 8): exact when, in every row, each 32-column block has one (s, z), s is
//                    an fp16 value and q - z + 8 lies in 0..15 (q4 = q - z + 8, so q4 - 8 = q - z and
//                    the float product is the same one): symmetric 2/3/4-bit, monotone groups of any
//                    multiple of 32.
//   Q8_0             d * q8: exact under the same block rule with q8 = q - z in -128..127 (symmetric
//                    5..8-bit, and asymmetric ones whose codes stay in range).
//   Q4_1             d * q + m with m = fp16(-s * z): the only rounding is m's (and the float sum's);
//                    used for 2..4-bit blocks Q4_0 cannot hold (asymmetric zero points).
//   anything else    (act-order groups that split a 32-column block, groups not a multiple of 32,
//                    scales fp16 cannot hold) is requantized to a fallback type with the error it adds.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "lowbit/base/aligned_buffer.h"
#include "lowbit/base/status.h"
#include "lowbit/formats/int_quant.h"
#include "lowbit/formats/quant_config.h"
#include "lowbit/formats/safetensors.h"
#include "lowbit/numeric/ggml_type.h"

namespace lowbit {

// One quantized linear of a folder, not read yet.
struct QuantizedSource {
  std::shared_ptr<const SafetensorsModel> tensors;
  std::shared_ptr<const QuantConfig> config;
  std::string prefix;            // HF module, e.g. "model.layers.0.self_attn.q_proj"
  int64_t rows = 0, cols = 0;    // out_features, in_features (from config.json)
  uint32_t unpermute_heads = 0;  // > 0: rows in HF rotate_half order over this many heads
  std::string where;             // the folder, for errors
};

// Reads and checks the layer against the config and the shape (one line naming tensor and field),
// then puts its rows in GGUF order (UnpermuteLinearRows). A bias must be all zeros (Llama's
// projections have none; a nonzero one is refused by name rather than dropped).
Expected<IntQuantLinear> ReadPlannedLinear(const QuantizedSource& s);
// Reorders the output rows (codes, scales, zeros, bias) from HF's rotate_half order into GGUF's
// interleaved pairs, as UnpermuteSourceRow does for float weights.
void UnpermuteLinearRows(IntQuantLinear& q, uint32_t n_heads);

// The form the engine runs: grouped-integer rows (act-order regrouped so groups are contiguous,
// groups padded to whole blocks) with the product's input map, or F32 rows when the W types cannot
// hold the values exactly (then `note` says why).
struct NativeWeight {
  GgmlType type = GgmlType::kF32;
  int64_t rows = 0, stored_cols = 0;
  const uint8_t* data = nullptr;        // rows * RowBytes(type, stored_cols)
  std::shared_ptr<const void> owner;    // owns `data`; null when it is the caller's `dst`
  std::vector<int32_t> x_map;           // stored column -> input column, -1 padding; empty: identity
  std::string note;                     // non-empty: dequantized to F32, and why
  float outlier_threshold = 0.0f;       // LLM.int8 rows: the outlier threshold they run with
};
// Packs into `dst` when it has exactly NativeBytes(...) bytes (the loader's one huge-page arena for
// all layers), else into memory of its own.
Expected<NativeWeight> ToNativeWeight(const IntQuantLinear& q, std::span<uint8_t> dst = {});
// The bytes ToNativeWeight packs a layer of this shape and module setting into (the F32 fallback,
// decided only once the scales are read, takes more: it then allocates its own).
uint64_t NativeBytes(int bits, int64_t rows, int64_t cols, int64_t group_size);

// How a quantized linear goes into a GGUF.
struct GgufChoice {
  GgmlType type = GgmlType::kF16;
  bool exact = false;  // the GGUF's dequantized values equal IntQuantLinear::value bit for bit
  bool from_codes = false;  // the blocks are built from the codes (else from the values by the type's quantizer)
  std::string why;     // for the inexact ones: what kept it from an exact type
};
// Q4_0 / Q8_0 where exact, Q4_1 for 2..4-bit blocks with other zero points, else `fallback` (any
// type lowbit writes; F16 where its block does not divide the rows).
GgufChoice ChooseGgufType(const IntQuantLinear& q, GgmlType fallback);
// Rows of `c.type` (RowBytes(type, cols) each) into `out`: Q4_0 / Q8_0 / Q4_1 built from the codes
// when `c.from_codes` (as ChooseGgufType decided), else from the dequantized values through the
// type's quantizer (F32: the values exactly).
Status EncodeGgufRows(const IntQuantLinear& q, const GgufChoice& c, std::span<uint8_t> out);

// What the GGUF rows add to the layer's own error: max |gguf - value|, their RMS, and the RMS of the
// values (for a relative figure).
struct AddedError {
  double max_abs = 0, rms = 0, weight_rms = 0;
  int64_t differing = 0;  // weights whose bits differ
};
AddedError MeasureAddedError(const IntQuantLinear& q, GgmlType type, std::span<const uint8_t> rows);

}  // namespace lowbit

// GPTQ and AWQ quantized Linear layers in safetensors, read into and written from IntQuantLinear.
// docs/FORMATS-NOTES.md lists the reference sources every rule below was checked against.
//
// GPTQ (AutoGPTQ / GPTQModel, "gptq" = v1 and "gptq_v2"), per module prefix P, W = pack_dtype bits
// (int32 unless GPTQModel's pack_dtype says int8/16/64), G = ceil(in / group_size):
//   P.qweight  int{W} [in * bits / W, out]  codes packed along the INPUT (int_pack.h), LSB first
//   P.qzeros   int{W} [G, out * bits / W]   zero points packed along the OUTPUT, same bit order;
//                                            v1 stores zero - 1, v2 stores the zero
//   P.scales   F16 (BF16, F32 accepted) [G, out]
//   P.g_idx    I32 (I64 accepted) [in]       group of each input; i // group_size without act-order
//   P.bias     F16 (BF16, F32) [out]         optional
// in must be a multiple of the values per word (8 for 4-bit int32; 32 for 3-bit), and so must out.
// The last group may be partial (AutoGPTQ sizes the groups with ceil; vLLM requires whole groups).
//
// GPTQ v1 zero points: a reader adds 1 to each field, so an all-ones field means 2^bits. GPTQModel
// instead adds 0x11..1 to the whole word (carry into the next field) because it writes a zero of 0
// as "word - 0x11..1" (borrow). The two agree unless a field is all ones; QuantConfig::v1_zeros
// picks the rule (GPTQModel's for files whose meta.quantizer names gptqmodel or lowbit, the
// per-field one otherwise), and QuantReadNotes counts the ambiguous fields. Writing v1, lowbit
// stores word = sum((zero_i - 1) << (i * bits)) mod 2^W: GPTQModel's bytes for every zero in
// 0..2^bits-1, and AutoGPTQ's as well whenever no zero is 0. 3-bit v1 fields wrap mod 8 both ways.
//
// AWQ GEMM (AutoAWQ WQLinear_GEMM, 4-bit only), group_size dividing in:
//   P.qweight  I32 [in, out / 8]         codes packed along the OUTPUT: nibble i of word c holds
//                                         output 8c + ORDER[i], ORDER = {0, 2, 4, 6, 1, 3, 5, 7}
//   P.qzeros   I32 [in / group, out / 8] zero points, same order, stored as is
//   P.scales   F16 [in / group, out]
//   P.bias     F16 [out]                 optional
//
// Every disagreement between the tensors and the config is one line naming the tensor and the field.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/formats/int_quant.h"
#include "lowbit/formats/quant_config.h"
#include "lowbit/formats/safetensors.h"

namespace lowbit {

// The tensors of one checkpoint: a single safetensors file or a (sharded) model. Non-owning.
class TensorSet {
 public:
  TensorSet(const SafetensorsModel& m) : model_(&m) {}  // NOLINT: implicit by design
  TensorSet(const SafetensorsFile& f) : file_(&f) {}    // NOLINT
  const StTensor* Find(std::string_view name) const;
  std::vector<const StTensor*> All() const;

 private:
  const SafetensorsModel* model_ = nullptr;
  const SafetensorsFile* file_ = nullptr;
};

// What a read noticed without failing.
struct QuantReadNotes {
  int64_t v1_all_ones_zero_fields = 0;  // GPTQ v1 zero fields holding all ones (see above)
};

// Reads module `prefix` (e.g. "model.layers.0.self_attn.q_proj") with out_features `expect_rows`
// and in_features `expect_cols`, validating every tensor against `config` (with its dynamic
// per-module overrides applied to `prefix`).
Expected<IntQuantLinear> ReadGptqLinear(const TensorSet& tensors, const std::string& prefix,
                                        const QuantConfig& config, int64_t expect_rows,
                                        int64_t expect_cols, QuantReadNotes* notes = nullptr);
Expected<IntQuantLinear> ReadAwqLinear(const TensorSet& tensors, const std::string& prefix,
                                       const QuantConfig& config, int64_t expect_rows,
                                       int64_t expect_cols);
// ReadGptqLinear or ReadAwqLinear by config.method.
Expected<IntQuantLinear> ReadQuantizedLinear(const TensorSet& tensors, const std::string& prefix,
                                             const QuantConfig& config, int64_t expect_rows,
                                             int64_t expect_cols, QuantReadNotes* notes = nullptr);

// One tensor of a packed layer, ready for a safetensors file.
struct PackedTensor {
  std::string name;  // prefix + ".qweight" etc.
  StDtype dtype;
  std::vector<uint64_t> shape;
  std::vector<uint8_t> bytes;
};

// Module `prefix`'s tensors (qweight, qzeros, scales, g_idx for GPTQ, bias when present), packed.
// Checks `q` against the config and the layout first: codes, zero range (v1/v2: 0..2^bits-1; sym:
// exactly 2^(bits-1)), g_idx monotone unless desc_act, scales exactly representable in
// q.scale_dtype (AWQ: fp16). The bias is stored in the scale dtype (rounded to nearest even, as the
// tools' .half() does).
Expected<std::vector<PackedTensor>> PackGptqLinear(const std::string& prefix, const IntQuantLinear& q,
                                                   const QuantConfig& config);
Expected<std::vector<PackedTensor>> PackAwqLinear(const std::string& prefix, const IntQuantLinear& q,
                                                  const QuantConfig& config);
Expected<std::vector<PackedTensor>> PackQuantizedLinear(const std::string& prefix, const IntQuantLinear& q,
                                                        const QuantConfig& config);
// The same tensors added to `writer` (which keeps the packed bytes until Write).
Status AddGptqLinear(SafetensorsWriter& writer, const std::string& prefix, const IntQuantLinear& q,
                     const QuantConfig& config);
Status AddAwqLinear(SafetensorsWriter& writer, const std::string& prefix, const IntQuantLinear& q,
                    const QuantConfig& config);
Status AddQuantizedLinear(SafetensorsWriter& writer, const std::string& prefix,
                          const IntQuantLinear& q, const QuantConfig& config);

// The prefixes P of every "P.qweight" in the set, in file order.
std::vector<std::string> QuantizedLinearPrefixes(const TensorSet& tensors);
// (out_features, in_features) that P's tensors imply under `config` (out from qweight, in from g_idx
// or qweight), for callers that do not know the model (a dequantize-everything conversion, the
// fuzzer). The read still checks every tensor against them.
Expected<std::pair<int64_t, int64_t>> QuantizedLinearShape(const TensorSet& tensors,
                                                           const std::string& prefix,
                                                           const QuantConfig& config);
// Reads every quantized linear the config quantizes, in file order, handing each to `fn`.
Status ForEachQuantizedLinear(
    const TensorSet& tensors, const QuantConfig& config,
    const std::function<Status(const std::string& prefix, IntQuantLinear&& q)>& fn,
    QuantReadNotes* notes = nullptr);

}  // namespace lowbit

#include "lowbit/formats/quant_checkpoint.h"

#include "lowbit/formats/quant_tensors.h"

namespace lowbit {

const StTensor* TensorSet::Find(std::string_view name) const {
  return model_ != nullptr ? model_->Find(name) : file_->Find(name);
}

std::vector<const StTensor*> TensorSet::All() const {
  if (model_ != nullptr) return model_->tensors();
  std::vector<const StTensor*> out;
  for (const StTensor& t : file_->tensors()) out.push_back(&t);
  return out;
}

Expected<IntQuantLinear> ReadQuantizedLinear(const TensorSet& tensors, const std::string& prefix,
                                             const QuantConfig& config, int64_t expect_rows, int64_t expect_cols,
                                             QuantReadNotes* notes) {
  if (config.method == QuantMethod::kAwq) return ReadAwqLinear(tensors, prefix, config, expect_rows, expect_cols);
  return ReadGptqLinear(tensors, prefix, config, expect_rows, expect_cols, notes);
}

Expected<std::vector<PackedTensor>> PackQuantizedLinear(const std::string& prefix, const IntQuantLinear& q,
                                                        const QuantConfig& config) {
  if (config.method == QuantMethod::kAwq) return PackAwqLinear(prefix, q, config);
  return PackGptqLinear(prefix, q, config);
}

Status AddQuantizedLinear(SafetensorsWriter& writer, const std::string& prefix, const IntQuantLinear& q,
                          const QuantConfig& config) {
  if (config.method == QuantMethod::kAwq) return AddAwqLinear(writer, prefix, q, config);
  return AddGptqLinear(writer, prefix, q, config);
}

std::vector<std::string> QuantizedLinearPrefixes(const TensorSet& tensors) {
  constexpr std::string_view kSuffix = ".qweight";
  std::vector<std::string> out;
  for (const StTensor* t : tensors.All()) {
    if (t->name.size() > kSuffix.size() && t->name.ends_with(kSuffix)) {
      out.push_back(t->name.substr(0, t->name.size() - kSuffix.size()));
    }
  }
  return out;
}

Expected<std::pair<int64_t, int64_t>> QuantizedLinearShape(const TensorSet& tensors, const std::string& prefix,
                                                           const QuantConfig& config) {
  LOWBIT_ASSIGN_OR_RETURN(const StTensor* qweight, quant_detail::Require(tensors, prefix + ".qweight"));
  if (qweight->shape.size() != 2) {
    return Errorf("{}: shape {} is not two-dimensional", qweight->name, quant_detail::ShapeString(qweight->shape));
  }
  // From qweight, the tensor that must be there: GPTQ [in * bits / W, out], AWQ [in, out / 8]. The
  // read then checks every tensor against these.
  const uint64_t d0 = std::min<uint64_t>(qweight->shape[0], uint64_t{1} << 32);
  const uint64_t d1 = std::min<uint64_t>(qweight->shape[1], uint64_t{1} << 32);
  if (config.method == QuantMethod::kAwq) return std::make_pair(static_cast<int64_t>(d1 * 8), static_cast<int64_t>(d0));
  // GPTQ's g_idx [in] names in_features directly, and lets a wrong "bits" be reported as such.
  const StTensor* g_idx = tensors.Find(prefix + ".g_idx");
  const bool int_g_idx = g_idx != nullptr && (g_idx->dtype == StDtype::kI32 || g_idx->dtype == StDtype::kI64);
  if (int_g_idx && g_idx->shape.size() == 1) {
    const uint64_t in = std::min<uint64_t>(g_idx->shape[0], uint64_t{1} << 32);
    return std::make_pair(static_cast<int64_t>(d1), static_cast<int64_t>(in));
  }
  LOWBIT_ASSIGN_OR_RETURN(std::optional<ModuleQuant> m, config.ForModule(prefix));
  const int bits = m ? m->bits : config.bits;
  return std::make_pair(static_cast<int64_t>(d1), static_cast<int64_t>(d0 * config.pack_bits / bits));
}

Status ForEachQuantizedLinear(const TensorSet& tensors, const QuantConfig& config,
                              const std::function<Status(const std::string& prefix, IntQuantLinear&& q)>& fn,
                              QuantReadNotes* notes) {
  for (const std::string& prefix : QuantizedLinearPrefixes(tensors)) {
    LOWBIT_ASSIGN_OR_RETURN(std::optional<ModuleQuant> m, config.ForModule(prefix));
    if (!m) {
      return Errorf("{}.qweight: the quantization config leaves {} unquantized, but the checkpoint quantizes it",
                    prefix, prefix);
    }
    LOWBIT_ASSIGN_OR_RETURN(auto shape, QuantizedLinearShape(tensors, prefix, config));
    LOWBIT_ASSIGN_OR_RETURN(IntQuantLinear q,
                            ReadQuantizedLinear(tensors, prefix, config, shape.first, shape.second, notes));
    LOWBIT_RETURN_IF_ERROR(fn(prefix, std::move(q)));
  }
  return OkStatus();
}

}  // namespace lowbit

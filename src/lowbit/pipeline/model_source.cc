#include "lowbit/pipeline/model_source.h"

#include <cstring>

#include "lowbit/base/aligned_buffer.h"
#include "lowbit/pipeline/row_convert.h"

namespace lowbit {

Expected<GgufFile> MaterializePlan(ConversionPlan plan, const std::string& name) {
  std::vector<std::shared_ptr<const void>> owners(plan.keep_alive.begin(), plan.keep_alive.end());
  std::vector<GgufTensorInfo> infos;
  infos.reserve(plan.tensors.size());
  for (const PlannedTensor& t : plan.tensors) {
    GgufTensorInfo info;
    info.name = t.name;
    info.n_dims = static_cast<uint32_t>(t.dims.size());
    if (info.n_dims == 0 || info.n_dims > kGgufMaxDims) return Errorf("{}: tensor '{}' has {} dimensions", name, t.name, info.n_dims);
    for (uint32_t d = 0; d < info.n_dims; ++d) info.dims[d] = t.dims[d];
    const bool to_f32 = info.n_dims == 1 && t.source_type != GgmlType::kF32;
    info.type = to_f32 ? GgmlType::kF32 : t.source_type;
    if (to_f32 || t.unpermute_heads != 0) {
      std::string err = ComputeTensorSize(info.type, info.n_dims, info.dims.data(), &info.n_elements, &info.n_bytes);
      if (!err.empty()) return Errorf("{}: tensor '{}': {}", name, t.name, err);
      auto buf = std::make_shared<AlignedBuffer>();
      buf->Resize(info.n_bytes);
      LOWBIT_RETURN_IF_ERROR(ConvertTensorRows(t, info.type, {buf->data(), info.n_bytes}));
      info.data = buf->data();
      owners.push_back(std::move(buf));
    } else {
      info.data = t.data.data();
    }
    infos.push_back(std::move(info));
  }
  return GgufFile::Assemble(name, std::move(plan.kvs), std::move(infos), std::move(owners));
}

Expected<GgufFile> OpenModel(const std::string& path, Residency residency, const std::string& vocab) {
  auto map = MappedFile::Open(path);
  if (map.ok() && map->size() >= 4 && std::memcmp(map->data(), "GGUF", 4) == 0) {
    return GgufFile::Open(path, residency);
  }
  LOWBIT_ASSIGN_OR_RETURN(ConversionPlan plan, PlanConversion(path, vocab));
  return MaterializePlan(std::move(plan), path);
}

}  // namespace lowbit

// `lowbit lora merge`: adapters folded into a base model as llama.cpp's llama-export-lora does
// (lora_file.h).
#include <cstring>
#include <optional>

#include "lowbit/base/thread_pool.h"
#include "lowbit/formats/gguf_writer.h"
#include "lowbit/kernels/gemm.h"
#include "lowbit/model/llama.h"
#include "lowbit/numeric/dequant.h"
#include "lowbit/pipeline/quant_mix.h"
#include "lowbit/quant/quantize.h"
#include "lowbit/train/lora_file.h"

namespace lowbit::train {
namespace {

// Base tensor (F32 values) + sum of scale_i * B_i A_i, adapter by adapter, as ggml's graph does it:
// delta = B A, then delta * scale, then delta + cur.
void MergeInto(float* cur, const GgufTensorInfo& t, const std::vector<const LoraTensor*>& parts, const std::vector<float>& scales,
               ThreadPool* pool) {
  const auto cols = static_cast<int64_t>(t.dims[0]), rows = static_cast<int64_t>(t.dims[1]);
  std::vector<float> delta(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < parts.size(); ++i) {
    const LoraTensor& l = *parts[i];
    GemmF32({.m = rows, .n = cols, .k = l.rank, .a = l.b.data(), .lda = l.rank, .b = l.a.data(), .ldb = cols, .c = delta.data(),
             .ldc = cols}, pool);
    for (int64_t j = 0; j < rows * cols; ++j) cur[j] = delta[j] * scales[i] + cur[j];
  }
}

}  // namespace

Expected<MergeReport> MergeLora(const MergeOptions& o) {
  if (o.adapters.empty()) return Errorf("no adapter to merge: give --lora FILE");
  LOWBIT_ASSIGN_OR_RETURN(GgufFile base, GgufFile::Open(o.base));
  if (base.Find("split.count") != nullptr) return Errorf("{}: split models are not supported; merge the splits first", o.base);
  LOWBIT_ASSIGN_OR_RETURN(LlamaModel model, LlamaModel::Load(base));
  std::vector<LoraAdapter> adapters;
  for (const LoraSpec& s : o.adapters) {
    LOWBIT_ASSIGN_OR_RETURN(LoraAdapter a, ReadLoraAdapter(s.path, model.config()));
    LOWBIT_RETURN_IF_ERROR(CheckLoraAgainst(a, base, model.config()));
    adapters.push_back(std::move(a));
  }
  // llama.cpp's rule: every adapter covers the same tensors.
  for (size_t i = 1; i < adapters.size(); ++i) {
    bool same = adapters[i].tensors.size() == adapters[0].tensors.size();
    for (const LoraTensor& t : adapters[i].tensors) same = same && adapters[0].Find(t.base) != nullptr;
    if (!same) {
      return Errorf("{} and {} do not adapt the same tensors; merge them one at a time", adapters[0].source, adapters[i].source);
    }
  }
  std::optional<GgmlType> outtype;
  uint32_t file_type = 1;  // llama.cpp writes MOSTLY_F16
  if (!o.outtype.empty()) {
    LOWBIT_ASSIGN_OR_RETURN(QuantMix mix, ResolveQuantMix(o.outtype));
    if (mix.is_mix) return Errorf("--outtype {}: give a tensor type (f32, f16, bf16, q8_0, ...), not a mix", o.outtype);
    outtype = mix.base;
    file_type = mix.file_type;
  }
  auto pool = std::make_shared<ThreadPool>(o.threads);
  GgufWriter w;
  for (const GgufKv& kv : base.kvs()) w.SetKv(kv.key, kv.value);
  MergeReport rep;
  bool all_f32 = true;
  for (const GgufTensorInfo& t : base.tensors()) {
    std::vector<const LoraTensor*> parts;
    std::vector<float> scales;
    for (size_t i = 0; i < adapters.size(); ++i) {
      if (const LoraTensor* l = adapters[i].Find(t.name)) {
        parts.push_back(l);
        scales.push_back(o.adapters[i].scale * l->scale);
      }
    }
    const std::span<const uint64_t> dims(t.dims.data(), t.n_dims);
    if (parts.empty()) {
      const uint8_t* data = t.data;
      LOWBIT_RETURN_IF_ERROR(w.AddTensor(t.name, t.type, dims, [data](std::span<uint8_t> out) {
        std::memcpy(out.data(), data, out.size());
        return OkStatus();
      }));
      ++rep.copied;
      continue;
    }
    const GgmlType type = outtype ? *outtype : (t.type == GgmlType::kF32 ? GgmlType::kF32 : GgmlType::kF16);
    all_f32 = all_f32 && type == GgmlType::kF32;
    if (ToFloatFor(t.type) == nullptr) return Errorf("{}: tensor '{}' is {}, which lowbit cannot dequantize", o.base, t.name, TypeInfo(t.type).name);
    const GgufTensorInfo* tp = &t;
    LOWBIT_RETURN_IF_ERROR(w.AddTensor(t.name, type, dims, [tp, parts, scales, type, pool](std::span<uint8_t> out) -> Status {
      const int64_t n = static_cast<int64_t>(tp->n_elements), cols = static_cast<int64_t>(tp->dims[0]);
      std::vector<float> cur(static_cast<size_t>(n));
      ToFloatFor(tp->type)(tp->data, cur.data(), n);
      MergeInto(cur.data(), *tp, parts, scales, pool.get());
      const uint64_t row_bytes = *RowBytes(type, static_cast<uint64_t>(cols));
      FromFloatFn from = FromFloatFor(type);
      pool->ParallelFor(static_cast<size_t>(n / cols), [&](size_t b, size_t e) {
        for (size_t r = b; r < e; ++r) from(cur.data() + r * cols, out.data() + r * row_bytes, cols, nullptr);
      });
      return OkStatus();
    }));
    ++rep.merged;
  }
  if (outtype) w.SetKv("general.file_type", GgufValue::U32(file_type));
  else w.SetKv("general.file_type", GgufValue::U32(all_f32 ? 0 : 1));
  LOWBIT_RETURN_IF_ERROR(w.Write(o.output));
  rep.file_size = w.FileSize();
  return rep;
}

}  // namespace lowbit::train

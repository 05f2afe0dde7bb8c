#include "lowbit/pipeline/model_source.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <thread>

#include "lowbit/base/aligned_buffer.h"
#include "lowbit/base/huge_page_buffer.h"
#include "lowbit/base/log.h"
#include "lowbit/base/mapped_file.h"
#include "lowbit/base/thread_pool.h"
#include "lowbit/numeric/bnb.h"
#include "lowbit/pipeline/bnb_linear.h"
#include "lowbit/pipeline/quant_linear.h"
#include "lowbit/pipeline/row_convert.h"

namespace lowbit {

namespace {

// A GPTQ / AWQ linear as the engine runs it: its grouped-integer rows, plus, when the columns were
// regrouped (act-order) or padded, the product's input map as the I32 tensor "<name>.x_map"
// (LlamaModel::Load reads it; docs/DESIGN-NOTES.md says why it travels as a tensor).
void AddNative(const PlannedTensor& t, NativeWeight& w, std::vector<GgufTensorInfo>& infos,
               std::vector<std::shared_ptr<const void>>& owners) {
  GgufTensorInfo info;
  info.name = t.name;
  info.n_dims = 2;
  info.dims[0] = static_cast<uint64_t>(w.stored_cols);
  info.dims[1] = static_cast<uint64_t>(w.rows);
  info.type = w.type;
  info.data = w.data;
  if (w.owner != nullptr) owners.push_back(w.owner);
  infos.push_back(std::move(info));
  if (w.x_map.empty()) return;
  auto map = std::make_shared<std::vector<int32_t>>(std::move(w.x_map));
  GgufTensorInfo m;
  m.name = t.name + ".x_map";
  m.n_dims = 1;
  m.dims[0] = map->size();
  m.type = GgmlType::kI32;
  m.data = reinterpret_cast<const uint8_t*>(map->data());
  owners.push_back(map);
  infos.push_back(std::move(m));
}

// Packs the plan's tensors that `selected` picks, several at a time (each is independent:
// unpacking, regrouping and packing one layer is single-threaded work), into one arena in 2 MiB
// pages (decode streams it ~10% faster than 4 KiB pages: docs/PERFORMANCE.md): tensor k gets
// `bytes(t)` of it (0: not known ahead, `pack` allocates), and `pack(t, span)` makes its
// NativeWeight. The first error in plan order wins.
template <typename Selected, typename Bytes, typename Pack>
Status PackIntoArena(const ConversionPlan& plan, Selected selected, Bytes bytes, Pack pack, std::vector<std::optional<NativeWeight>>& out,
                     std::vector<std::shared_ptr<const void>>& owners) {
  std::vector<size_t> todo;
  for (size_t i = 0; i < plan.tensors.size(); ++i) {
    if (selected(plan.tensors[i])) todo.push_back(i);
  }
  out.resize(plan.tensors.size());
  if (todo.empty()) return OkStatus();
  std::vector<uint64_t> offset(todo.size() + 1, 0), size(todo.size(), 0);
  for (size_t k = 0; k < todo.size(); ++k) {
    size[k] = bytes(plan.tensors[todo[k]]);
    offset[k + 1] = offset[k] + (size[k] + 63) / 64 * 64;
  }
  LOWBIT_ASSIGN_OR_RETURN(HugePageBuffer arena_buf, HugePageBuffer::Allocate(offset.back()));
  auto arena = std::make_shared<HugePageBuffer>(std::move(arena_buf));
  owners.push_back(arena);
  std::vector<Status> status(todo.size());
  ThreadPool pool(std::min<int>(static_cast<int>(todo.size()), static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))));
  pool.ParallelFor(todo.size(), [&](size_t b, size_t e) {
    for (size_t k = b; k < e; ++k) {
      Expected<NativeWeight> w = pack(plan.tensors[todo[k]], std::span<uint8_t>(arena->data() + offset[k], static_cast<size_t>(size[k])));
      if (!w.ok()) status[k] = w.status();
      else out[todo[k]] = std::move(*w);
    }
  }, 1);
  for (const Status& s : status) LOWBIT_RETURN_IF_ERROR(s);
  return OkStatus();
}

// Every GPTQ / AWQ linear of the plan into its native rows.
Status ReadNativeWeights(const ConversionPlan& plan, std::vector<std::optional<NativeWeight>>& out,
                         std::vector<std::shared_ptr<const void>>& owners) {
  return PackIntoArena(
      plan, [](const PlannedTensor& t) { return t.quant != nullptr; },
      [](const PlannedTensor& t) -> uint64_t {  // from the shape and the module's bits and group size
        const QuantizedSource& src = *t.quant;
        auto mq = src.config->ForModule(src.prefix);
        return mq.ok() && mq->has_value() ? NativeBytes((*mq)->bits, src.rows, src.cols, (*mq)->group_size) : 0;
      },
      [&](const PlannedTensor& t, std::span<uint8_t> dst) -> Expected<NativeWeight> {
        LOWBIT_ASSIGN_OR_RETURN(IntQuantLinear q, ReadPlannedLinear(*t.quant));
        // Done with the packed tensors' pages: they stop counting as resident (the arena holds the layer).
        for (const char* suffix : {".qweight", ".qzeros", ".scales", ".g_idx"}) {
          if (const StTensor* st = t.quant->tensors->Find(t.quant->prefix + suffix)) {
            for (const MappedFile* m : plan.mappings) m->DropPages(st->data);
          }
        }
        return ToNativeWeight(q, dst);
      },
      out, owners);
}

// Every bitsandbytes linear of the plan (NF4 / FP4 / LLM.int8) into its internal rows (the 4 KiB
// pages of a buffer per layer cost TinyLlama's int8 decode ~10%: docs/PERFORMANCE.md,
// "bitsandbytes folders on Zen 4").
Status ReadBnbWeights(const ConversionPlan& plan, std::vector<std::optional<NativeWeight>>& out,
                      std::vector<std::shared_ptr<const void>>& owners) {
  return PackIntoArena(
      plan, [](const PlannedTensor& t) { return t.bnb != nullptr; }, [](const PlannedTensor& t) { return BnbNativeBytes(*t.bnb); },
      [](const PlannedTensor& t, std::span<uint8_t> dst) { return ToNativeBnb(*t.bnb, dst); }, out, owners);
}

}  // namespace

Expected<GgufFile> MaterializePlan(ConversionPlan plan, const std::string& name) {
  std::vector<std::shared_ptr<const void>> owners(plan.keep_alive.begin(), plan.keep_alive.end());
  std::vector<GgufTensorInfo> infos;
  infos.reserve(plan.tensors.size());
  std::vector<std::string> as_f32;  // quantized linears the grouped types cannot hold exactly
  std::optional<float> int8_threshold;  // of the LLM.int8 linears that run natively
  std::vector<std::optional<NativeWeight>> native;
  LOWBIT_RETURN_IF_ERROR(ReadNativeWeights(plan, native, owners));
  LOWBIT_RETURN_IF_ERROR(ReadBnbWeights(plan, native, owners));
  for (size_t i = 0; i < plan.tensors.size(); ++i) {
    const PlannedTensor& t = plan.tensors[i];
    if (t.bnb != nullptr) {
      if (!native[i]->note.empty()) as_f32.push_back(t.name + ": " + native[i]->note);
      if (IsInt8RowType(native[i]->type)) int8_threshold = native[i]->outlier_threshold;
      AddNative(t, *native[i], infos, owners);
      native[i].reset();
      continue;
    }
    if (t.quant != nullptr) {
      if (!native[i]->note.empty()) as_f32.push_back(t.name + ": " + native[i]->note);
      AddNative(t, *native[i], infos, owners);
      native[i].reset();
      continue;
    }
    GgufTensorInfo info;
    info.name = t.name;
    info.n_dims = static_cast<uint32_t>(t.dims.size());
    if (info.n_dims == 0 || info.n_dims > kGgufMaxDims) return Errorf("{}: tensor '{}' has {} dimensions", name, t.name, info.n_dims);
    for (uint32_t d = 0; d < info.n_dims; ++d) info.dims[d] = t.dims[d];
    const bool to_f32 = info.n_dims == 1 && t.source_type != GgmlType::kF32;
    info.type = to_f32 ? GgmlType::kF32 : t.source_type;
    // A safetensors file aligns only its data section: after a tensor of an odd byte count (a
    // bitsandbytes uint8 weight or quant-state blob) the next F32 tensor starts at any address, and
    // the forward reads norms and biases as float* (a misaligned load: undefined, UBSan).
    // Such a tensor is copied (rows of the same type) into aligned memory like a converted one.
    const bool misaligned = reinterpret_cast<uintptr_t>(t.data.data()) % 4 != 0;
    if (to_f32 || t.unpermute_heads != 0 || misaligned) {
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
  if (!as_f32.empty()) {
    Log(LogLevel::kWarn, "{}: {} quantized linear(s) dequantized to F32 at load (exact, slower), e.g. {}", name, as_f32.size(),
        as_f32.front());
  }
  if (int8_threshold.has_value()) plan.kvs.push_back({kInt8ThresholdKey, GgufValue::F32(*int8_threshold)});
  return GgufFile::Assemble(name, std::move(plan.kvs), std::move(infos), std::move(owners));
}

Expected<GgufFile> OpenModel(const std::string& path, Residency residency, const std::string& vocab, double int8_threshold) {
  auto map = MappedFile::Open(path);
  if (map.ok() && map->size() >= 4 && std::memcmp(map->data(), "GGUF", 4) == 0) {
    return GgufFile::Open(path, residency);
  }
  LOWBIT_ASSIGN_OR_RETURN(ConversionPlan plan, PlanConversion(path, vocab));
  if (int8_threshold >= 0) {
    for (PlannedTensor& t : plan.tensors) {
      if (t.bnb != nullptr) {
        auto src = std::make_shared<BnbSource>(*t.bnb);
        src->int8_threshold = int8_threshold;
        t.bnb = std::move(src);
      }
    }
  }
  return MaterializePlan(std::move(plan), path);
}

}  // namespace lowbit

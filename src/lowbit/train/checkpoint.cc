#include "lowbit/train/checkpoint.h"

#include <cmath>
#include <cstring>

#include "lowbit/formats/gguf_writer.h"

namespace lowbit::train {
namespace {

constexpr const char* kSuffix[3] = {"", ".adam_m", ".adam_v"};

std::vector<float>& Part(Param& p, int k) { return k == 0 ? p.value : (k == 1 ? p.m : p.v); }

}  // namespace

Status SaveCheckpoint(const std::string& path, const std::vector<Param*>& params, const CheckpointInfo& info) {
  GgufWriter w;
  w.SetKv("general.architecture", GgufValue::String("lowbit-train"));
  w.SetKv("train.kind", GgufValue::String(info.kind));
  w.SetKv("train.step", GgufValue::U64(static_cast<uint64_t>(info.step)));
  w.SetKv("train.config", GgufValue::String(info.config));
  for (Param* p : params) {
    const uint64_t dims[2] = {static_cast<uint64_t>(p->cols), static_cast<uint64_t>(p->rows)};
    for (int k = 0; k < 3; ++k) {
      const std::vector<float>* src = &Part(*p, k);
      LOWBIT_RETURN_IF_ERROR(w.AddTensor(p->name + kSuffix[k], GgmlType::kF32, dims, [src](std::span<uint8_t> out) {
        std::memcpy(out.data(), src->data(), out.size());
        return OkStatus();
      }));
    }
  }
  return w.Write(path);
}

Expected<CheckpointInfo> LoadCheckpoint(const GgufFile& g, const std::vector<Param*>& params, const CheckpointInfo& want) {
  CheckpointInfo info;
  const GgufValue* kind = g.Find("train.kind");
  const GgufValue* step = g.Find("train.step");
  const GgufValue* config = g.Find("train.config");
  if (kind == nullptr || kind->AsString() == nullptr || step == nullptr || !step->AsUInt() || config == nullptr ||
      config->AsString() == nullptr) {
    return Errorf("{}: not a lowbit training checkpoint (train.kind, train.step or train.config missing)", g.name());
  }
  info.kind = *kind->AsString();
  info.step = static_cast<int64_t>(*step->AsUInt());
  info.config = *config->AsString();
  if (info.kind != want.kind) return Errorf("{}: a {} checkpoint, this run is {}", g.name(), info.kind, want.kind);
  if (info.step < 0 || info.step > (int64_t{1} << 40)) return Errorf("{}: train.step {} is out of range", g.name(), info.step);
  if (info.config != want.config) {
    return Errorf("{}: made with other settings ({}); this run has {}. Resume with the same model and options, or start "
                  "without --resume", g.name(), info.config, want.config);
  }
  if (g.tensors().size() != 3 * params.size()) {
    return Errorf("{}: {} tensors, this run trains {} parameters ({} tensors)", g.name(), g.tensors().size(), params.size(),
                  3 * params.size());
  }
  for (Param* p : params) {
    for (int k = 0; k < 3; ++k) {
      const std::string name = p->name + kSuffix[k];
      const GgufTensorInfo* t = g.FindTensor(name);
      if (t == nullptr) return Errorf("{}: tensor '{}' is missing", g.name(), name);
      if (t->type != GgmlType::kF32 || t->n_dims != 2 || static_cast<int64_t>(t->dims[0]) != p->cols ||
          static_cast<int64_t>(t->dims[1]) != p->rows) {
        return Errorf("{}: tensor '{}' is {} {}, expected F32 [{}, {}]", g.name(), name, TypeInfo(t->type).name, t->ShapeString(),
                      p->cols, p->rows);
      }
      std::vector<float>& dst = Part(*p, k);
      std::memcpy(dst.data(), t->data, dst.size() * 4);
      for (float v : dst) {
        if (!std::isfinite(v) || (k == 2 && v < 0)) return Errorf("{}: tensor '{}' holds an invalid value", g.name(), name);
      }
    }
  }
  return info;
}

Expected<CheckpointInfo> LoadCheckpoint(const std::string& path, const std::vector<Param*>& params, const CheckpointInfo& want) {
  LOWBIT_ASSIGN_OR_RETURN(GgufFile g, GgufFile::Open(path));
  return LoadCheckpoint(g, params, want);
}

}  // namespace lowbit::train

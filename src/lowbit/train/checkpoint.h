// Training state on disk, resumable. A GGUF file (written to a temporary name and renamed, so the
// last complete checkpoint survives a crash or a NaN stop) holding, for every trainable parameter,
// F32 tensors "<name>", "<name>.adam_m" and "<name>.adam_v" ([rows][cols]), and the keys
//   train.kind   string  "qat" or "lora"
//   train.step   u64     optimizer steps done
//   train.config string  JSON of the settings a resumed run must share (model, type, shapes, ...)
// Loading checks the kind, the settings and every tensor's name and shape against the run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/formats/gguf_reader.h"
#include "lowbit/train/optimizer.h"

namespace lowbit::train {

struct CheckpointInfo {
  std::string kind;
  int64_t step = 0;
  std::string config;
};

Status SaveCheckpoint(const std::string& path, const std::vector<Param*>& params, const CheckpointInfo& info);
// Fills params' values and moments; `want` gives the kind and config the file must have (step ignored).
Expected<CheckpointInfo> LoadCheckpoint(const GgufFile& file, const std::vector<Param*>& params, const CheckpointInfo& want);
Expected<CheckpointInfo> LoadCheckpoint(const std::string& path, const std::vector<Param*>& params, const CheckpointInfo& want);

}  // namespace lowbit::train

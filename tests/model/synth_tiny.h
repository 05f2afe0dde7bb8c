// The small synthetic models the model tests run on: `lowbit synth --shape tiny` (dim 256, 4 heads of
// 64, 2 KV heads, FFN 512) or another test shape, with its weights in `type`, written into `dir` and
// opened.
#pragma once

#include <filesystem>
#include <string>

#include "lowbit/formats/gguf_reader.h"
#include "lowbit/pipeline/synth.h"
#include "test_data.h"

namespace lowbit::testing {

// `lowbit synth --shape SHAPE` in `type` written into `dir` (once per shape and type) and opened
// with `residency`.
inline Expected<GgufFile> SynthShape(const TempDir& dir, const std::string& shape, const std::string& type = "F32",
                                     Residency residency = Residency::kMapped) {
  SynthOptions so;
  so.shape = shape;
  so.type = type;
  so.output = dir.Path(shape + "-" + type + ".gguf");
  so.threads = 1;
  if (!std::filesystem::exists(so.output)) {
    if (auto size = Synthesize(so); !size.ok()) return size.status();
  }
  return GgufFile::Open(so.output, residency);
}

inline Expected<GgufFile> SynthTiny(const TempDir& dir, const std::string& type = "F32") { return SynthShape(dir, "tiny", type); }

}  // namespace lowbit::testing

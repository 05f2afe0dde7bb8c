// The small synthetic model the model tests run on: `lowbit synth --shape tiny` (dim 256, 4 heads of
// 64, 2 KV heads, FFN 512) with its weights in `type`, written into `dir` and opened.
#pragma once

#include <string>

#include "lowbit/formats/gguf_reader.h"
#include "lowbit/pipeline/synth.h"
#include "test_data.h"

namespace lowbit::testing {

inline Expected<GgufFile> SynthTiny(const TempDir& dir, const std::string& type = "F32") {
  SynthOptions so;
  so.shape = "tiny";
  so.type = type;
  so.output = dir.Path("tiny-" + type + ".gguf");
  so.threads = 1;
  if (auto size = Synthesize(so); !size.ok()) return size.status();
  return GgufFile::Open(so.output);
}

}  // namespace lowbit::testing

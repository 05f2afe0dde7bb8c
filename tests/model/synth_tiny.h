// The small synthetic models the model tests run on: `lowbit synth --shape tiny` (dim 256, 4 heads of
// 64, 2 KV heads, FFN 512) or another test shape, with its weights in `type`, written into `dir` and
// opened.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "lowbit/formats/gguf_reader.h"
#include "lowbit/model/llama.h"
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

// The file types whose matrices a model in memory holds interleaved where the kernel table can
// (numeric/interleave.h): the parameters of the tests that compare it with the mapped file.
inline constexpr GgmlType kInterleavingTypes[] = {GgmlType::kQ4_K, GgmlType::kQ5_K,  GgmlType::kQ2_K, GgmlType::kQ3_K, GgmlType::kQ6_K,
                                                  GgmlType::kIQ4_XS, GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_0, GgmlType::kQ5_1,
                                                  GgmlType::kIQ4_NL};

// One synthetic file (`shape` in `type`, in a directory of its own) opened mapped and read into
// memory, and a model loaded from each with the default options: views into the mapped file, and the
// in-memory one's own image (interleaved where it can be). `status` says whether all of it worked.
struct BothResidencies {
  TempDir dir;
  std::optional<GgufFile> mapped_file, read_file;
  std::optional<LlamaModel> mapped, read;
  Status status;
  BothResidencies(const std::string& shape, GgmlType type) { status = Load(shape, std::string(TypeInfo(type).name)); }

 private:
  Status Load(const std::string& shape, const std::string& type) {
    LOWBIT_ASSIGN_OR_RETURN(GgufFile m, SynthShape(dir, shape, type, Residency::kMapped));
    LOWBIT_ASSIGN_OR_RETURN(GgufFile r, SynthShape(dir, shape, type, Residency::kInMemory));
    mapped_file.emplace(std::move(m));
    read_file.emplace(std::move(r));
    LOWBIT_ASSIGN_OR_RETURN(LlamaModel a, LlamaModel::Load(*mapped_file));
    LOWBIT_ASSIGN_OR_RETURN(LlamaModel b, LlamaModel::Load(*read_file));
    mapped.emplace(std::move(a));
    read.emplace(std::move(b));
    return OkStatus();
  }
};

inline Expected<GgufFile> SynthTiny(const TempDir& dir, const std::string& type = "F32") { return SynthShape(dir, "tiny", type); }

}  // namespace lowbit::testing

// `lowbit advise`: which model and which quantization fit this hardware, and how fast they will run.
//
// For the given model (as it is, and quantized to each candidate type) or for every named shape:
// the file size, the memory `lowbit run` would hold (advise/memory.h), whether it fits and with how
// much left, decode and prompt speed (eval/cost_model.h on this machine's measured kernel speeds, or
// a described machine's), and the expected quality loss (advise/quality.h); then a recommendation:
// the most accurate type that fits with 10% of the memory left free, moving down to a smaller type
// while that is at least 1.25x faster for less than 0.001 more KLD.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lowbit/advise/hardware.h"
#include "lowbit/advise/memory.h"
#include "lowbit/advise/model_source.h"
#include "lowbit/advise/quality.h"
#include "lowbit/base/mapped_file.h"

namespace lowbit {

struct AdviseOptions {
  int64_t ctx = 0;        // 0: what run uses (the model's training context)
  int slots = 1;          // sequences served at once (a KV cache each)
  bool kv_f16 = false;    // the cache type run uses by default is F32
  Residency residency = Residency::kAuto;
  int64_t prompt_tokens = 512, decode_tokens = 128;  // what the speeds are for (llama-bench's pp512, tg128)
  std::vector<std::string> types;  // candidates; empty: DefaultCandidateTypes()
};

struct Estimate {
  std::string model;            // the file or shape
  std::string type;
  uint64_t file_bytes = 0;
  int64_t ctx = 0;
  RunMemory memory;             // per machine (per node with several; on the GPU, its memory)
  uint64_t available = 0;       // what it is compared with
  bool fits = false;
  int64_t headroom_bytes = 0;   // available - memory.total()
  double decode_tok_s = 0;      // mean over decode_tokens tokens from an empty cache
  std::optional<double> prompt_tok_s;  // a prompt_tokens batch; none on a GPU (not modelled)
  Quality quality;
  std::string error;            // lowbit cannot run this file as planned: why
  nlohmann::json ToJson() const;
};

struct Advice {
  std::string model, kind;      // empty model: the named shapes were ranked
  Hardware hardware;
  AdviseOptions options;
  std::optional<Estimate> as_is;
  std::vector<Estimate> candidates;
  std::optional<size_t> recommended;  // index into candidates (or as_is when it is the pick: see text)
  std::string recommendation;
  nlohmann::json ToJson() const;
  std::string ToText() const;
};

// Checks what can be checked before the machine is measured: the candidate type names, and that the
// model (src, when given) plans and loads (inconsistent metadata, an architecture lowbit cannot run).
Status CheckAdviseInputs(const ModelSource* src, const AdviseOptions& o);
// One planned file on the hardware.
Estimate EstimateFor(const PlannedModel& p, const Hardware& hw, const AdviseOptions& o);
Expected<Advice> Advise(const ModelSource& src, const Hardware& hw, const AdviseOptions& o);
// Every named shape that is a real model (SynthShapes without the test shapes), each at its best type.
Expected<Advice> RankShapes(const Hardware& hw, const AdviseOptions& o);

}  // namespace lowbit

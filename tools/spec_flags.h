// Speculative decoding flags of run and bench: --lookup, --model-draft FILE, --draft-max,
// --draft-min, --draft-fixed; and the draft model they open.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "lowbit/base/status.h"
#include "lowbit/engine/generate.h"
#include "tp.h"

namespace lowbit::tools {

struct SpecFlags {
  bool lookup = false;
  std::string draft;  // --model-draft
  int draft_max = 16, draft_min = 0;
  bool fixed = false;
  bool enabled() const { return lookup || !draft.empty(); }
};

void AddSpecOptions(CLI::App* sub, SpecFlags* f);

// The options of the flags other than the draft model (`out->draft` stays nullptr); checks them.
Status SpecOptionsFromFlags(const SpecFlags& f, SpeculativeOptions* out);

// Fills `out` from the flags; with --model-draft opens the draft model (`draft` keeps it) and
// checks that its vocabulary is the target's. One rank only.
Status OpenSpeculative(const SpecFlags& f, const std::string& model_path, const ModelContext& target, Residency residency,
                       std::unique_ptr<ModelContext>* draft, SpeculativeOptions* out);

}  // namespace lowbit::tools

#include "spec_flags.h"

#include <filesystem>

#include "lowbit/engine/speculative.h"

namespace lowbit::tools {

void AddSpecOptions(CLI::App* sub, SpecFlags* f) {
  CLI::Option* lookup = sub->add_flag("--lookup", f->lookup, "speculative decoding with drafts from n-grams of the prompt and the text so far");
  CLI::Option* draft = sub->add_option("--model-draft", f->draft, "speculative decoding with this draft model (same vocabulary)");
  lookup->excludes(draft);
  sub->add_option("--draft-max", f->draft_max, "drafted tokens per check, at most")->check(CLI::Range(1, 256))->capture_default_str();
  sub->add_option("--draft-min", f->draft_min, "a shorter draft is not checked")->check(CLI::Range(0, 256))->capture_default_str();
  sub->add_flag("--draft-fixed", f->fixed, "always draft --draft-max tokens (default: adapt to the accept rate)");
}

Status SpecOptionsFromFlags(const SpecFlags& f, SpeculativeOptions* out) {
  *out = SpeculativeOptions{};
  if (!f.enabled()) return OkStatus();
  if (f.draft_min > f.draft_max) return Errorf("--draft-min {} is above --draft-max {}", f.draft_min, f.draft_max);
  out->lookup = f.lookup;
  out->draft_max = f.draft_max;
  out->draft_min = f.draft_min;
  out->adaptive = !f.fixed;
  return OkStatus();
}

Status OpenSpeculative(const SpecFlags& f, const std::string& model_path, const ModelContext& target, Residency residency,
                       std::unique_ptr<ModelContext>* draft, SpeculativeOptions* out) {
  *out = SpeculativeOptions{};
  if (!f.enabled()) return OkStatus();
  if (target.ranks() > 1) return Errorf("speculative decoding (--lookup, --model-draft) runs on one rank only, not under mpirun");
  LOWBIT_RETURN_IF_ERROR(SpecOptionsFromFlags(f, out));
  if (f.draft.empty()) return OkStatus();
  LOWBIT_ASSIGN_OR_RETURN(*draft, ModelContext::Open(f.draft, residency, TpFlags{}));
  auto name = [](const std::string& p) { return std::filesystem::path(p).filename().string(); };
  LOWBIT_RETURN_IF_ERROR(CheckDraftVocabulary(name(model_path), target.model(), target.vocab(), name(f.draft), (*draft)->model(),
                                              (*draft)->vocab()));
  out->draft = &(*draft)->model();
  return OkStatus();
}

}  // namespace lowbit::tools

// Advice as text (a table and a recommendation) and as the `--json` object: `hardware`, `as_is`,
// `candidates` and `recommendation`.
#include <fmt/format.h>

#include "lowbit/advise/advisor.h"
#include "lowbit/base/progress.h"

namespace lowbit {
namespace {

nlohmann::json OrNull(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); }

std::string Gib(uint64_t bytes) { return fmt::format("{:.2f}", static_cast<double>(bytes) / (1u << 30)); }

std::string Row(const Estimate& e, const std::string& label) {
  if (!e.error.empty()) return fmt::format("{:<14} {:>8}  cannot run: {}\n", label, Gib(e.file_bytes), e.error);
  const std::string fits = e.fits ? fmt::format("yes ({})", Gib(static_cast<uint64_t>(e.headroom_bytes)))
                                  : fmt::format("no (-{})", Gib(static_cast<uint64_t>(-e.headroom_bytes)));
  const std::string kld = e.quality.stories5m != nullptr ? fmt::format("{:.2g}", e.quality.stories5m->kld) : "-";
  const std::string kld8 = e.quality.llama3_8b_kld >= 0 ? fmt::format("{:.2g}", e.quality.llama3_8b_kld) : "-";
  const std::string prompt = e.prompt_tok_s ? fmt::format("{:.1f}", *e.prompt_tok_s) : "-";
  return fmt::format("{:<14} {:>8} {:>8} {:>8}  {:<13} {:>8.1f} {:>9} {:>10} {:>10}\n", label, Gib(e.file_bytes),
                     Gib(e.memory.total()), Gib(e.memory.kv_cache), fits, e.decode_tok_s, prompt, kld, kld8);
}

}  // namespace

nlohmann::json Estimate::ToJson() const {
  nlohmann::json j = {{"type", type},
                      {"file_bytes", file_bytes},
                      {"ctx", ctx},
                      {"memory_bytes", memory.total()},
                      {"memory", memory.ToJson()},
                      {"available_bytes", available},
                      {"fits", fits},
                      {"headroom_bytes", headroom_bytes},
                      {"decode_tok_s", error.empty() ? nlohmann::json(decode_tok_s) : nlohmann::json(nullptr)},
                      {"prompt_tok_s", OrNull(prompt_tok_s)},
                      {"kld", quality.stories5m != nullptr ? nlohmann::json(quality.stories5m->kld) : nlohmann::json(nullptr)},
                      {"kld_source", quality.stories5m != nullptr ? nlohmann::json(quality.source) : nlohmann::json(nullptr)},
                      {"ppl_ratio", quality.stories5m != nullptr ? nlohmann::json(quality.stories5m->ppl_ratio) : nlohmann::json(nullptr)},
                      {"kld_llama3_8b", quality.llama3_8b_kld >= 0 ? nlohmann::json(quality.llama3_8b_kld) : nlohmann::json(nullptr)}};
  if (!model.empty()) j["model"] = model;
  if (!error.empty()) j["error"] = error;
  return j;
}

nlohmann::json Advice::ToJson() const {
  nlohmann::json cands = nlohmann::json::array();
  for (const Estimate& e : candidates) cands.push_back(e.ToJson());
  nlohmann::json rec = {{"text", recommendation}};
  if (recommended) {
    const Estimate& e = candidates[*recommended];
    rec["type"] = e.type;
    if (!e.model.empty()) rec["model"] = e.model;
  } else {
    rec["type"] = nullptr;
  }
  nlohmann::json hw = hardware.ToJson();
  hw["model"] = model.empty() ? nlohmann::json(nullptr) : nlohmann::json(model);
  return {{"hardware", hw},
          {"as_is", as_is ? as_is->ToJson() : nlohmann::json(nullptr)},
          {"candidates", cands},
          {"recommendation", rec}};
}

std::string Advice::ToText() const {
  const Hardware& h = hardware;
  std::string s;
  if (h.has_gpu()) {
    s += fmt::format("GPU: {} GiB, {:.0f} GB/s at {:.0f}% efficiency (described; decode only)\n", Gib(h.vram), h.gpu_bandwidth_gbps,
                     100 * h.gpu_efficiency);
  } else {
    s += fmt::format("machine: {} ({}{}): {} GiB RAM, {} GiB available, {} threads, {} kernels, read bandwidth {:.1f} GB/s\n", h.cpu,
                     h.described ? "described" : "measured", h.from_cache ? ", this boot's measurement" : "", Gib(h.ram_total),
                     Gib(h.ram_available), h.threads, IsaName(h.isa), h.speed.bandwidth_gbps);
    if (h.nodes > 1) {
      s += fmt::format("tensor parallel over {} such machines: {:.0f} us latency, {:.2f} GB/s between them\n", h.nodes, h.net.latency_s * 1e6,
                       h.net.bytes_per_s / 1e9);
    }
  }
  if (!h.assumptions.empty()) s += "assuming " + h.assumptions + "\n";
  const std::string where = h.has_gpu() ? "GPU memory" : h.nodes > 1 ? "memory per machine" : "memory";
  if (!model.empty()) {
    s += fmt::format("model: {} ({}), context {}, {} KV cache{}\n\n", model, kind,
                     candidates.empty() ? options.ctx : candidates[0].ctx, options.kv_f16 ? "F16" : "F32",
                     options.slots > 1 ? fmt::format(", {} slots", options.slots) : "");
  } else {
    s += fmt::format("named models, {} KV cache{}\n\n", options.kv_f16 ? "F16" : "F32",
                     options.ctx > 0 ? fmt::format(", context {}", options.ctx) : ", each at its training context");
  }
  s += fmt::format("{:<14} {:>8} {:>8} {:>8}  {:<13} {:>8} {:>9} {:>10} {:>10}\n", "type", "file", where == "memory" ? "memory" : "mem", "KV", "fits (free)",
                   "decode", "prompt", "KLD", "KLD 8B");
  s += fmt::format("{:<14} {:>8} {:>8} {:>8}  {:<13} {:>8} {:>9} {:>10} {:>10}\n", "", "GiB", "GiB", "GiB", "GiB", "tok/s", "tok/s",
                   "stories5M", "llama.cpp");
  if (as_is) s += Row(*as_is, "as is: " + as_is->type);
  std::string last_model;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const Estimate& e = candidates[i];
    if (!e.model.empty() && e.model != last_model) {
      s += e.model + " (ctx " + std::to_string(e.ctx) + ")\n";
      last_model = e.model;
    }
    s += Row(e, (recommended && *recommended == i ? "* " : "  ") + e.type);
  }
  s += "\nrecommended: " + recommendation + "\n";
  s += fmt::format("{}: the model file ({}), KV cache, buffers and the process; decode: mean of {} tokens from an empty cache; "
                   "prompt: {} tokens in one batch; {}\n",
                   where, h.has_gpu() ? "all of it" : "read into memory, or mapped above half the available memory",
                   options.decode_tokens, options.prompt_tokens, QualitySource());
  return s;
}

}  // namespace lowbit

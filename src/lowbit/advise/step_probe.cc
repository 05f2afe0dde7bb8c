#include "lowbit/advise/step_probe.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <vector>

#include "lowbit/advise/probe_rows.h"
#include "lowbit/base/huge_page_buffer.h"
#include "lowbit/model/llama.h"

namespace lowbit {
namespace {

constexpr int kReps = 7;

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The plan's tensors with synthetic values, in one buffer of 2 MiB pages as a model read into memory,
// assembled into a file the engine loads.
Expected<GgufFile> SyntheticCopy(const GgufFile& plan) {
  std::vector<GgufTensorInfo> infos = plan.tensors();
  std::vector<uint64_t> offset(infos.size() + 1, 0);
  for (size_t i = 0; i < infos.size(); ++i) {
    if (!CanFillProbeRows(infos[i].type)) return Errorf("no synthetic rows of {} ({})", TypeInfo(infos[i].type).name, infos[i].name);
    offset[i + 1] = offset[i] + (infos[i].n_bytes + 63) / 64 * 64;
  }
  LOWBIT_ASSIGN_OR_RETURN(HugePageBuffer buf, HugePageBuffer::Allocate(offset.back()));
  auto owner = std::make_shared<HugePageBuffer>(std::move(buf));
  for (size_t i = 0; i < infos.size(); ++i) {
    uint8_t* p = owner->data() + offset[i];
    FillProbeRows(infos[i].type, static_cast<int64_t>(infos[i].dims[0]), p, infos[i].n_bytes);
    infos[i].data = p;
  }
  return GgufFile::Assemble(plan.name(), plan.kvs(), std::move(infos), {owner});
}

// Mean seconds per token of decoding positions [0, o.tokens) from an empty cache.
double DecodeStepSeconds(const LlamaModel& model, const StepProbeOptions& o) {
  LlamaSession s(model, SessionOptions{.n_ctx = o.n_ctx, .threads = o.threads, .max_batch = 1, .kv_f16 = o.kv_f16});
  const int64_t block = std::min<int64_t>(o.tokens, 64);
  const int64_t vocab = model.config().n_vocab;
  auto run = [&](int64_t first) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < block; ++i) s.Forward(static_cast<int32_t>((first + i) % vocab), first + i);
    return Seconds(t0) / static_cast<double>(block);
  };
  for (int64_t i = 0; i < 8; ++i) s.Forward(static_cast<int32_t>(i % vocab), i % o.n_ctx);  // warm-up
  // The mean over the repetitions, as `lowbit bench` reports it: on a shared machine the thread
  // hand-offs of some steps wait for a descheduled core, and a median would leave those out.
  double sum = 0;
  for (int rep = 0; rep < kReps; ++rep) {
    const double first = run(0), last = o.tokens > block ? run(o.tokens - block) : first;
    sum += (first + last) / 2;
  }
  return sum / kReps;
}

// Mean seconds of a prompt of o.prompt tokens from an empty cache.
double PromptStepSeconds(const LlamaModel& model, const StepProbeOptions& o) {
  LlamaSession s(model, SessionOptions{.n_ctx = o.n_ctx, .threads = o.threads, .max_batch = std::min<int64_t>(o.prompt, 512), .kv_f16 = o.kv_f16});
  const int64_t vocab = model.config().n_vocab;
  std::vector<int32_t> tokens(static_cast<size_t>(o.prompt));
  for (int64_t i = 0; i < o.prompt; ++i) tokens[static_cast<size_t>(i)] = static_cast<int32_t>((7 * i + 1) % vocab);
  s.Forward(tokens, 0);  // warm-up
  double sum = 0;
  for (int rep = 0; rep < kReps; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    s.Forward(tokens, 0);
    sum += Seconds(t0);
  }
  return sum / kReps;
}

}  // namespace

Expected<StepTimes> TimeSteps(const GgufFile& plan, const StepProbeOptions& o) {
  if (o.tokens < 1 || o.tokens > o.n_ctx) return Errorf("cannot time {} decode tokens in a context of {}", o.tokens, o.n_ctx);
  if (o.prompt < 0 || o.prompt > o.n_ctx) return Errorf("cannot time a prompt of {} tokens in a context of {}", o.prompt, o.n_ctx);
  LOWBIT_ASSIGN_OR_RETURN(GgufFile file, SyntheticCopy(plan));
  // Laid out as the run's model will be: its own copy of the weights where it holds them in memory.
  const LoadOptions lo{.weights = o.in_memory ? LoadOptions::Weights::kCopy : LoadOptions::Weights::kView};
  LOWBIT_ASSIGN_OR_RETURN(LlamaModel model, LlamaModel::Load(file, lo));
  StepTimes t;
  t.decode_s = DecodeStepSeconds(model, o);
  if (o.prompt > 0) t.prompt_s = PromptStepSeconds(model, o);
  return t;
}

}  // namespace lowbit

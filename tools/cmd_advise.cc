// `lowbit advise [MODEL] [-c N] [--slots N] [--cache-type f16] [--json] [--ram 16G --bandwidth 60GB/s
// --cores 8 --isa avx2] [--vram 24G --gpu-bandwidth 936GB/s] [--nodes N --net 50us,10Gbit]`.
#include <cstdio>
#include <memory>

#include "commands.h"
#include "lowbit/advise/advisor.h"

namespace lowbit::tools {

void AddAdvise(CLI::App& app, Registry& r) {
  struct Args {
    std::string model;
    AdviseOptions o;
    int threads = 0;
    bool json = false, no_cache = false, list = false;
    std::string ram, bandwidth, isa, vram, gpu_bandwidth, net, types;
    int cores = 0, nodes = 1;
    double gpu_efficiency = 0;
  };
  auto a = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand(
      "advise", "Which model and quantization fit this machine (or a described one), how fast they run, what they lose");
  sub->add_option("model", a->model, "GGUF, Hugging Face folder, safetensors file, or a shape name (--list-shapes); none: rank the shapes");
  sub->add_option("-c,--ctx-size,--ctx", a->o.ctx, "context (default: the model's, as run uses)")->check(CLI::Range(int64_t{0}, int64_t{1} << 24));
  sub->add_option("--slots", a->o.slots, "sequences served at once, each with its KV cache")->check(CLI::Range(1, 4096));
  sub->add_option("-t,--threads", a->threads, "threads (default: all)")->check(CLI::Range(0, 1024));
  sub->add_option("-p,--n-prompt", a->o.prompt_tokens, "prompt tokens the prompt speed is for")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  sub->add_option("-n,--n-gen", a->o.decode_tokens, "generated tokens the decode speed is for")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  sub->add_option("--types", a->types, "candidate types, comma-separated (default: F16,Q8_0,Q6_K,Q5_K_M,Q4_K_M,IQ4_XS,Q3_K_M,Q2_K,GPTQ-W4G128,NF4; GPTQ-W4G128: a GPTQ/AWQ folder w4 g128, NF4: a bitsandbytes NF4 folder)");
  AddCacheTypeOption(sub, &a->o.kv_f16);
  AddResidencyOptions(sub, &a->o.residency);
  sub->add_option("--ram", a->ram, "describe a machine: memory lowbit may use, e.g. 16G");
  sub->add_option("--bandwidth", a->bandwidth, "describe a machine: memory read bandwidth, e.g. 60GB/s");
  sub->add_option("--cores", a->cores, "describe a machine: cores")->check(CLI::Range(1, 4096));
  sub->add_option("--isa", a->isa, "describe a machine: ref, avx2 or avx512")->check(CLI::IsMember({"ref", "avx2", "avx512"}));
  sub->add_option("--vram", a->vram, "a GPU's memory, e.g. 24G (with --gpu-bandwidth)");
  sub->add_option("--gpu-bandwidth", a->gpu_bandwidth, "a GPU's memory bandwidth, e.g. 936GB/s");
  sub->add_option("--gpu-efficiency", a->gpu_efficiency, "fraction of the GPU bandwidth decode reaches (default 0.7)");
  sub->add_option("--nodes", a->nodes, "tensor parallel over N such machines (with --net)")->check(CLI::Range(1, 4096));
  sub->add_option("--net", a->net, "the network between them: LATENCY,BANDWIDTH, e.g. 50us,10Gbit");
  sub->add_flag("--no-cache", a->no_cache, "measure this machine again instead of using this boot's measurement");
  sub->add_flag("--list-shapes", a->list, "list the named shapes and exit");
  sub->add_flag("--json", a->json, "print one JSON object: hardware, as_is, candidates, recommendation");
  r.Add(sub, [a]() -> Status {
    if (a->list) {
      for (const SynthShape& s : SynthShapes()) std::printf("%-16s %s\n", s.name.c_str(), s.description.c_str());
      return OkStatus();
    }
    HardwareOptions h;
    h.threads = a->threads;
    h.use_cache = !a->no_cache;
    h.show_progress = !a->json;
    if (!a->ram.empty()) {
      LOWBIT_ASSIGN_OR_RETURN(h.ram, ParseBytes(a->ram, "--ram"));
    }
    if (!a->bandwidth.empty()) {
      LOWBIT_ASSIGN_OR_RETURN(double bps, ParseBytesPerSecond(a->bandwidth, "--bandwidth"));
      h.bandwidth_gbps = bps / 1e9;
    }
    if (a->cores > 0) h.cores = a->cores;
    if (!a->isa.empty()) {
      Isa isa;
      ParseIsa(a->isa, &isa);
      h.isa = isa;
    }
    if (!a->vram.empty()) {
      LOWBIT_ASSIGN_OR_RETURN(h.vram, ParseBytes(a->vram, "--vram"));
    }
    if (!a->gpu_bandwidth.empty()) {
      LOWBIT_ASSIGN_OR_RETURN(double bps, ParseBytesPerSecond(a->gpu_bandwidth, "--gpu-bandwidth"));
      h.gpu_bandwidth_gbps = bps / 1e9;
    }
    if (a->gpu_efficiency != 0) h.gpu_efficiency = a->gpu_efficiency;
    h.nodes = a->nodes;
    if (!a->net.empty()) {
      LOWBIT_ASSIGN_OR_RETURN(h.net, ParseNetwork(a->net, "--net"));
    }
    for (size_t b = 0; b < a->types.size();) {
      const size_t e = std::min(a->types.find(',', b), a->types.size());
      if (e > b) a->o.types.push_back(a->types.substr(b, e - b));
      b = e + 1;
    }
    // The model and the types first: bad input should not wait for the machine to be measured.
    std::optional<ModelSource> src;
    if (!a->model.empty()) {
      LOWBIT_ASSIGN_OR_RETURN(src, ModelSource::Open(a->model));
    }
    LOWBIT_RETURN_IF_ERROR(CheckAdviseInputs(src ? &*src : nullptr, a->o));
    LOWBIT_ASSIGN_OR_RETURN(Hardware hw, GetHardware(h));
    Advice advice;
    if (src) {
      LOWBIT_ASSIGN_OR_RETURN(advice, Advise(*src, hw, a->o));
    } else {
      LOWBIT_ASSIGN_OR_RETURN(advice, RankShapes(hw, a->o));
    }
    const std::string out = a->json ? advice.ToJson().dump(2) + "\n" : advice.ToText();
    std::fwrite(out.data(), 1, out.size(), stdout);
    return OkStatus();
  });
}

}  // namespace lowbit::tools

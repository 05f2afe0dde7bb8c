// The machine `lowbit advise` predicts for: this one, measured (memory, cores, ISA, and the speeds
// of lowbit's kernels: read bandwidth, the decode stream rate and prefill GEMM rate of every weight
// type, attention, the thread pool's hand-off), or one described by its RAM, bandwidth, cores and
// ISA, optionally with a GPU (VRAM and bandwidth) or as N such machines on a network (tensor
// parallel). Measurement takes a few seconds and is cached per boot (speed_probe.cc).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "lowbit/base/cpu_features.h"
#include "lowbit/base/status.h"
#include "lowbit/eval/cost_model.h"

namespace lowbit {

class PromptProbe;  // advise/prompt_probe.h

struct Hardware {
  bool described = false;         // false: this machine, measured
  std::string cpu;                // model name (this machine) or "described"
  uint64_t ram_total = 0;         // bytes
  uint64_t ram_available = 0;     // what lowbit may use now (MemAvailable, cgroup limit)
  uint64_t cgroup_limit = 0;      // 0: none
  int threads = 1;                // cores lowbit uses (-t)
  Isa isa = Isa::kRef;            // kernel table used
  bool huge_pages = true;         // transparent huge pages offered (model files read into memory)
  MachineSpeed speed;             // at `threads`, from huge-page memory
  double mapped_factor = 1;       // decode speed from a mapped file relative to `speed`
  bool from_cache = false;        // the speeds came from this boot's cache
  // This machine: times a model's prompt at its own shapes (advise/prompt_probe.h); none for a
  // described machine (its prompt is scaled from the per-type GEMM rates).
  std::shared_ptr<PromptProbe> prompt_probe;
  // A GPU, when described: decode is predicted at gpu_efficiency of its bandwidth.
  uint64_t vram = 0;
  double gpu_bandwidth_gbps = 0;
  double gpu_efficiency = 0.7;
  // Tensor parallel over `nodes` machines like this one.
  int nodes = 1;
  Network net;
  std::string assumptions;        // what a described machine's figures rest on

  bool has_gpu() const { return vram > 0; }
  nlohmann::json ToJson() const;
};

struct HardwareOptions {
  int threads = 0;         // 0: every core this process may run on
  bool use_cache = true;   // reuse this boot's measurement
  bool show_progress = false;
  // A described machine: any of these set describes one (the rest default to this machine's).
  std::optional<uint64_t> ram;            // bytes
  std::optional<double> bandwidth_gbps;
  std::optional<int> cores;
  std::optional<Isa> isa;
  // A GPU (both or neither).
  std::optional<uint64_t> vram;
  std::optional<double> gpu_bandwidth_gbps;
  std::optional<double> gpu_efficiency;
  // N machines on a network.
  int nodes = 1;
  std::optional<Network> net;
};

// This machine, or the one `o` describes.
Expected<Hardware> GetHardware(const HardwareOptions& o);

// The kernel speeds of this machine at `threads` threads with the kernel table of `isa` (at most
// the CPU's): from this boot's cache when `use_cache` and present, else measured (a few seconds)
// and cached. `mapped_factor` receives the decode speed ratio of 4 KiB to 2 MiB pages.
Expected<MachineSpeed> MeasureMachineSpeed(int threads, Isa isa, bool use_cache, bool show_progress,
                                           double* mapped_factor, bool* from_cache);

// Flag values: "16G", "512M", "16GiB", "1.5T" (powers of 1024; a plain number is bytes);
// "60GB/s", "936GB/s", "10Gbit" (decimal: GB = 1e9 bytes, Gbit = 1e9 bits); "50us", "0.2ms", "1s".
Expected<uint64_t> ParseBytes(const std::string& s, const std::string& flag);
Expected<double> ParseBytesPerSecond(const std::string& s, const std::string& flag);
Expected<double> ParseSeconds(const std::string& s, const std::string& flag);
// "LATENCY,BANDWIDTH", e.g. "50us,10Gbit".
Expected<Network> ParseNetwork(const std::string& s, const std::string& flag);

}  // namespace lowbit

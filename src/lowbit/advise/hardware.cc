#include "lowbit/advise/hardware.h"

#include <cctype>
#include <cmath>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "lowbit/advise/prompt_probe.h"
#include "lowbit/base/memory_info.h"

namespace lowbit {
namespace {

std::string CpuName() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(" \t", colon + 1));
    }
  }
  return "unknown CPU";
}

// A number and its unit: "16G" -> (16, "g"), "60GB/s" -> (60, "gb/s").
bool SplitNumber(const std::string& s, double* value, std::string* unit) {
  size_t used = 0;
  try {
    *value = std::stod(s, &used);
  } catch (const std::exception&) {
    return false;
  }
  if (!std::isfinite(*value) || *value < 0) return false;
  unit->clear();
  for (size_t i = used; i < s.size(); ++i) {
    if (!std::isspace(static_cast<unsigned char>(s[i]))) unit->push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(s[i]))));
  }
  return true;
}

}  // namespace

Expected<uint64_t> ParseBytes(const std::string& s, const std::string& flag) {
  double v = 0;
  std::string u;
  auto bad = [&] { return Errorf("{} '{}': expected a size such as 16G, 512M or 1.5T", flag, s); };
  if (!SplitNumber(s, &v, &u)) return bad();
  double scale = 0;
  if (u.empty() || u == "b") scale = 1;
  else if (u == "k" || u == "kb" || u == "kib") scale = 1024.0;
  else if (u == "m" || u == "mb" || u == "mib") scale = 1024.0 * 1024;
  else if (u == "g" || u == "gb" || u == "gib") scale = 1024.0 * 1024 * 1024;
  else if (u == "t" || u == "tb" || u == "tib") scale = 1024.0 * 1024 * 1024 * 1024;
  else return bad();
  const double bytes = v * scale;
  if (bytes < 1 || bytes > 1e18) return Errorf("{} '{}': {} bytes is not a memory size a machine has", flag, s, bytes);
  return static_cast<uint64_t>(bytes);
}

Expected<double> ParseBytesPerSecond(const std::string& s, const std::string& flag) {
  double v = 0;
  std::string u;
  auto bad = [&] { return Errorf("{} '{}': expected a rate such as 60GB/s, 936GB/s or 10Gbit", flag, s); };
  if (!SplitNumber(s, &v, &u)) return bad();
  if (u.size() > 2 && u.substr(u.size() - 2) == "/s") u.resize(u.size() - 2);
  else if (u.size() > 2 && u.substr(u.size() - 2) == "ps") u.resize(u.size() - 2);
  double scale = 0;
  if (u == "gb") scale = 1e9;
  else if (u == "mb") scale = 1e6;
  else if (u == "tb") scale = 1e12;
  else if (u == "gbit" || u == "gb_bits") scale = 1e9 / 8;
  else if (u == "mbit") scale = 1e6 / 8;
  else if (u == "tbit") scale = 1e12 / 8;
  else return bad();
  const double rate = v * scale;
  if (rate < 1e5 || rate > 1e14) return Errorf("{} '{}': {} bytes per second is not a bandwidth a machine has", flag, s, rate);
  return rate;
}

Expected<double> ParseSeconds(const std::string& s, const std::string& flag) {
  double v = 0;
  std::string u;
  if (!SplitNumber(s, &v, &u)) return Errorf("{} '{}': expected a time such as 50us, 0.2ms or 1s", flag, s);
  double scale = 0;
  if (u == "s") scale = 1;
  else if (u == "ms") scale = 1e-3;
  else if (u == "us") scale = 1e-6;
  else if (u == "ns") scale = 1e-9;
  else return Errorf("{} '{}': expected a time such as 50us, 0.2ms or 1s", flag, s);
  if (v * scale > 10) return Errorf("{} '{}': a network latency of more than 10 s is not one lowbit can plan for", flag, s);
  return v * scale;
}

Expected<Network> ParseNetwork(const std::string& s, const std::string& flag) {
  const size_t comma = s.find(',');
  if (comma == std::string::npos) return Errorf("{} '{}': expected LATENCY,BANDWIDTH such as 50us,10Gbit", flag, s);
  Network n;
  LOWBIT_ASSIGN_OR_RETURN(n.latency_s, ParseSeconds(s.substr(0, comma), flag));
  LOWBIT_ASSIGN_OR_RETURN(n.bytes_per_s, ParseBytesPerSecond(s.substr(comma + 1), flag));
  return n;
}

nlohmann::json Hardware::ToJson() const {
  nlohmann::json j = {{"source", described ? "described" : "measured"},
                      {"cpu", cpu},
                      {"ram_total_bytes", ram_total},
                      {"ram_available_bytes", ram_available},
                      {"threads", threads},
                      {"isa", std::string(IsaName(isa))},
                      {"huge_pages", huge_pages},
                      {"bandwidth_gbps", speed.bandwidth_gbps},
                      {"mapped_factor", mapped_factor},
                      {"speed", speed.ToJson()},
                      {"from_cache", from_cache}};
  if (cgroup_limit != 0) j["cgroup_limit_bytes"] = cgroup_limit;
  if (has_gpu()) {
    j["gpu"] = {{"vram_bytes", vram}, {"bandwidth_gbps", gpu_bandwidth_gbps}, {"efficiency", gpu_efficiency}};
  }
  if (nodes > 1) j["nodes"] = {{"count", nodes}, {"latency_s", net.latency_s}, {"bandwidth_bytes_per_s", net.bytes_per_s}};
  if (!assumptions.empty()) j["assumptions"] = assumptions;
  return j;
}

Expected<Hardware> GetHardware(const HardwareOptions& o) {
  Hardware hw;
  const int host_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int threads = o.threads > 0 ? o.threads : host_threads;
  if (o.bandwidth_gbps && !(*o.bandwidth_gbps > 0)) return Errorf("--bandwidth must be positive");
  if (o.cores && (*o.cores < 1 || *o.cores > 4096)) return Errorf("--cores {}: a machine has 1 to 4096 cores", *o.cores);
  if (o.vram.has_value() != o.gpu_bandwidth_gbps.has_value()) {
    return Errorf("a GPU needs both --vram and --gpu-bandwidth");
  }
  if (o.gpu_efficiency && !(*o.gpu_efficiency > 0 && *o.gpu_efficiency <= 1)) {
    return Errorf("--gpu-efficiency {}: expected a fraction of the GPU's bandwidth in (0, 1]", *o.gpu_efficiency);
  }
  if (o.nodes < 1 || o.nodes > 4096) return Errorf("--nodes {}: expected 1 to 4096 machines", o.nodes);
  if (o.nodes > 1 && !o.net) return Errorf("--nodes {} needs --net LATENCY,BANDWIDTH (e.g. 50us,10Gbit)", o.nodes);
  if (o.isa && *o.isa > MaxSupportedIsa()) {
    return Errorf("--isa {}: this machine has only {}, and a described machine's per-core speeds are measured here",
                  IsaName(*o.isa), IsaName(MaxSupportedIsa()));
  }
  const MemoryInfo mem = ReadMemoryInfo();
  hw.cpu = CpuName();
  hw.ram_total = mem.total;
  hw.ram_available = mem.available;
  hw.cgroup_limit = mem.cgroup_limit;
  hw.huge_pages = TransparentHugePages();
  hw.isa = o.isa.value_or(ActiveIsa());
  hw.threads = threads;
  const bool scaled = o.bandwidth_gbps || o.cores || o.isa;  // speeds scaled from this machine's cores
  hw.described = scaled || o.ram.has_value();
  if (!scaled) {
    LOWBIT_ASSIGN_OR_RETURN(hw.speed, MeasureMachineSpeed(threads, hw.isa, o.use_cache, o.show_progress, &hw.mapped_factor, &hw.from_cache));
    hw.prompt_probe = std::make_shared<PromptProbe>(threads, hw.isa, o.use_cache, o.show_progress);
  } else {
    // Per core as measured here with the described ISA, times the cores; decode at the fraction of
    // the bandwidth probe each type's kernel reaches here on one core, times the given bandwidth.
    bool cached = false;
    double factor = 1;
    LOWBIT_ASSIGN_OR_RETURN(MachineSpeed one, MeasureMachineSpeed(1, hw.isa, o.use_cache, o.show_progress, &factor, &cached));
    double bandwidth = 0;
    if (o.bandwidth_gbps) {
      bandwidth = *o.bandwidth_gbps;
    } else {
      bool c2 = false;
      double f2 = 1;
      LOWBIT_ASSIGN_OR_RETURN(MachineSpeed host, MeasureMachineSpeed(threads, hw.isa, o.use_cache, o.show_progress, &f2, &c2));
      bandwidth = host.bandwidth_gbps;
    }
    const int cores = o.cores.value_or(threads);
    hw.threads = cores;
    hw.from_cache = cached;
    hw.mapped_factor = factor;
    hw.speed = one;
    hw.speed.threads = cores;
    hw.speed.bandwidth_gbps = bandwidth;
    for (auto& [t, s] : hw.speed.types) {
      // One core's share of the described bandwidth is what one thread reaches here, scaled alike.
      s.stream_gbps = one.types[t].stream_gbps / one.bandwidth_gbps * bandwidth;
      s.stream1_gbps = std::min(one.types[t].stream1_gbps, s.stream_gbps);
      s.gemm_gops = one.types[t].gemm_gops * cores;
    }
    hw.speed.attention_gflops = one.attention_gflops * cores;
    hw.speed.attention_f16_gflops = one.attention_f16_gflops * cores;
    hw.cpu = "described";
    hw.huge_pages = true;
    hw.assumptions = fmt::format(
        "{} cores as fast as one of this machine's ({}) with the {} kernels; decode at the fraction of the read bandwidth "
        "each weight type reaches here on one core; a decode step's fixed costs (norms, RoPE, ...) as one core here",
        cores, CpuName(), IsaName(hw.isa));
  }
  if (o.ram) {
    hw.ram_total = hw.ram_available = *o.ram;
    hw.cgroup_limit = 0;
    if (!scaled) hw.assumptions = "this machine's speeds with the memory given by --ram";
  }
  if (o.vram) {
    hw.vram = *o.vram;
    hw.gpu_bandwidth_gbps = *o.gpu_bandwidth_gbps;
    hw.gpu_efficiency = o.gpu_efficiency.value_or(0.7);
  }
  hw.nodes = o.nodes;
  if (o.net) hw.net = *o.net;
  return hw;
}

}  // namespace lowbit

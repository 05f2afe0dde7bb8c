#include "lowbit/base/cpu_features.h"

#include <cpuid.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>

namespace lowbit {
namespace {

uint64_t ReadXcr0() {
  uint32_t eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

CpuFeatures Detect() {
  CpuFeatures f;
  if (const long l1d = sysconf(_SC_LEVEL1_DCACHE_SIZE); l1d >= 4096 && l1d <= (long{1} << 24)) f.l1d_bytes = static_cast<uint32_t>(l1d);
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = (c >> 27) & 1;
  const bool fma = (c >> 12) & 1;
  const bool f16c = (c >> 29) & 1;
  const bool avx = (c >> 28) & 1;
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = ReadXcr0();
  const bool os_avx = (xcr0 & 0x6) == 0x6;            // XMM and YMM state
  const bool os_avx512 = (xcr0 & 0xE6) == 0xE6;       // + opmask, ZMM_Hi256, Hi16_ZMM
  if (!os_avx) return f;
  f.fma = fma;
  f.f16c = f16c;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    f.avx2 = (b >> 5) & 1;
    if (os_avx512) {
      f.avx512f = (b >> 16) & 1;
      f.avx512dq = (b >> 17) & 1;
      f.avx512bw = (b >> 30) & 1;
      f.avx512vl = (b >> 31) & 1;
      f.avx512vnni = (c >> 11) & 1;
    }
  }
  if (os_avx512 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) f.avx512bf16 = (a >> 5) & 1;
  return f;
}

std::atomic<int> g_override{-1};

}  // namespace

std::string CpuFeatures::ToString() const {
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  add(avx2, "avx2");
  add(fma, "fma");
  add(f16c, "f16c");
  add(avx512f, "avx512f");
  add(avx512bw, "avx512bw");
  add(avx512vl, "avx512vl");
  add(avx512dq, "avx512dq");
  add(avx512vnni, "avx512vnni");
  add(avx512bf16, "avx512bf16");
  return s.empty() ? "none" : s;
}

const CpuFeatures& GetCpuFeatures() {
  static const CpuFeatures features = Detect();
  return features;
}

std::string_view IsaName(Isa isa) {
  switch (isa) {
    case Isa::kRef: return "ref";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
  }
  return "?";
}

bool ParseIsa(std::string_view name, Isa* out) {
  for (Isa i : {Isa::kRef, Isa::kAvx2, Isa::kAvx512}) {
    if (name == IsaName(i)) {
      *out = i;
      return true;
    }
  }
  return false;
}

Isa MaxSupportedIsa() {
  const CpuFeatures& f = GetCpuFeatures();
  if (!(f.avx2 && f.fma && f.f16c)) return Isa::kRef;
  if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vnni) return Isa::kAvx512;
  return Isa::kAvx2;
}

std::vector<Isa> SupportedIsas() {
  std::vector<Isa> out;
  for (int i = 0; i <= static_cast<int>(MaxSupportedIsa()); ++i) out.push_back(static_cast<Isa>(i));
  return out;
}

void SetIsaOverride(Isa isa) { g_override.store(static_cast<int>(isa)); }

Isa ActiveIsa() {
  Isa max = MaxSupportedIsa();
  int o = g_override.load();
  if (o < 0) {
    const char* env = std::getenv("LOWBIT_ISA");
    Isa parsed;
    if (env != nullptr && ParseIsa(env, &parsed)) o = static_cast<int>(parsed);
  }
  if (o < 0) return max;
  return static_cast<Isa>(std::min(o, static_cast<int>(max)));
}

}  // namespace lowbit

// What the synthetic-folder writers (synth_gptq_folder.cc, synth_bnb_folder.cc) share: the float
// tensors of a llama folder filled with deterministic random fp16 values, and their error line.
#pragma once

#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/formats/safetensors.h"
#include "lowbit/numeric/half.h"

namespace lowbit::bench {

// `name` of `shape` in fp16, uniform in [-amp, amp) from `seed`; amp 0: all ones (a norm).
inline Status AddRandomF16(SafetensorsWriter& w, const std::string& name, std::vector<uint64_t> shape, float amp, uint64_t seed) {
  return w.Add(name, StDtype::kF16, shape, [amp, seed](std::span<uint8_t> o) {
    std::mt19937 rng(static_cast<uint32_t>(seed));
    std::uniform_real_distribution<float> u(-amp, amp);
    for (size_t i = 0; i + 1 < o.size(); i += 2) {
      const uint16_t h = Fp32ToFp16(amp == 0 ? 1.0f : u(rng));
      std::memcpy(&o[i], &h, 2);
    }
    return OkStatus();
  });
}

inline int Fail(const Status& s) {
  std::fprintf(stderr, "%s\n", s.message().c_str());
  return 1;
}

}  // namespace lowbit::bench

// A described machine for the advisor's tests: every probed type at the same made-up rates, so that
// a prediction is a sum the test can check exactly.
#pragma once

#include "lowbit/eval/cost_model.h"

namespace lowbit::testing {

inline MachineSpeed TestSpeed() {
  MachineSpeed m;
  m.threads = 4;
  m.bandwidth_gbps = 50;
  m.attention_gflops = m.attention_f16_gflops = 100;
  m.handoff_us = 2;
  for (GgmlType t : {GgmlType::kF32, GgmlType::kF16, GgmlType::kQ8_0, GgmlType::kQ6_K, GgmlType::kQ5_K, GgmlType::kQ4_K,
                     GgmlType::kQ4_0, GgmlType::kIQ4_XS, GgmlType::kQ3_K, GgmlType::kQ2_K, GgmlType::kW4G128, GgmlType::kNF4G64x2}) {
    m.types[t] = {40, 200, 20, 100};
  }
  return m;
}

}  // namespace lowbit::testing

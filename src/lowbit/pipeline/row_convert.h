// Row-wise conversion of a planned tensor into its output type (F32/F16/BF16, or a byte copy for
// any other matching type), applying the Q/K un-permutation when the plan asks for it.
#pragma once

#include <span>

#include "lowbit/base/status.h"
#include "lowbit/pipeline/convert.h"

namespace lowbit {

Status ConvertTensorRows(const PlannedTensor& t, GgmlType out, std::span<uint8_t> dst);

}  // namespace lowbit

// libFuzzer target: imatrix .dat parser. Any input must give a value or an error, never a crash, a
// hang or an unbounded allocation.
#include <cstddef>
#include <cstdint>
#include <span>

#include "lowbit/formats/imatrix.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)lowbit::ParseImatrixDat(std::span<const uint8_t>(data, size), "fuzz");
  return 0;
}

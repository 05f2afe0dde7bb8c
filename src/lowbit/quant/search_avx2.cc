// The quantizer searches for the AVX2 build (same source, same bits) (see search_impl.inc).
#define LOWBIT_SEARCH_NS avx2
#include "lowbit/quant/search_impl.inc"

namespace lowbit::search::avx2 {
const SearchTable& Table() {
  static const SearchTable table{&QuantizeSymmetric, &QuantizeAffine, &QuantizeScaled};
  return table;
}
}  // namespace lowbit::search::avx2

// The quantizer searches for the baseline ISA (see search_impl.inc).
#define LOWBIT_SEARCH_NS ref
#include "lowbit/quant/search_impl.inc"

namespace lowbit::search::ref {
const SearchTable& Table() {
  static const SearchTable table{&QuantizeSymmetric, &QuantizeAffine, &QuantizeScaled};
  return table;
}
}  // namespace lowbit::search::ref

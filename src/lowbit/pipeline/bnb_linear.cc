#include "lowbit/pipeline/bnb_linear.h"

#include "lowbit/base/aligned_buffer.h"
#include "lowbit/kernels/dot_int8.h"
#include "lowbit/numeric/bnb.h"
#include "lowbit/numeric/dequant.h"
#include "lowbit/pipeline/convert.h"

namespace lowbit {
namespace {

Expected<std::vector<float>> ReadHfOrderValues(const BnbSource& s) {
  const int64_t n = s.rows * s.cols;
  std::vector<float> v(static_cast<size_t>(n));
  if (s.eight_bit) {
    LOWBIT_ASSIGN_OR_RETURN(Bnb8Linear L, ReadBnb8Linear(*s.tensors, s.prefix, s.rows, s.cols));
    const auto* q = reinterpret_cast<const int8_t*>(L.q.data());
    for (int64_t r = 0; r < s.rows; ++r) {
      for (int64_t c = 0; c < s.cols; ++c) v[r * s.cols + c] = Int8Value(q[r * s.cols + c], L.scb[r]);  // int8_vectorwise_dequant
    }
    return v;
  }
  LOWBIT_ASSIGN_OR_RETURN(Bnb4Linear L, ReadBnb4Linear(*s.tensors, s.prefix, s.rows, s.cols));
  const std::array<float, 16>& levels = Bnb4Levels(L.state.type);
  for (int64_t k = 0; k < n; ++k) {
    const uint8_t b = L.packed[static_cast<size_t>(k / 2)];
    const int q = k % 2 == 0 ? b >> 4 : b & 0xF;
    v[static_cast<size_t>(k)] = levels[static_cast<size_t>(q)] * L.absmax[static_cast<size_t>(k / L.state.blocksize)];
  }
  return v;
}

}  // namespace

Expected<std::vector<float>> ReadBnbValues(const BnbSource& s) {
  LOWBIT_ASSIGN_OR_RETURN(std::vector<float> v, ReadHfOrderValues(s));
  if (s.unpermute_heads == 0) return v;
  std::vector<float> out(v.size());
  CopyPermutedRows(reinterpret_cast<const uint8_t*>(v.data()), reinterpret_cast<uint8_t*>(out.data()), s.rows,
                   static_cast<uint64_t>(s.cols) * 4, s.unpermute_heads, /*to_gguf=*/true);
  return out;
}

namespace {

// Rows of `type` that `pack` writes in HF order, moved into GGUF row order where asked: into `dst`
// when it is the layer's size, else into a buffer of their own.
template <typename Pack>
void SetPackedRows(const BnbSource& s, GgmlType type, Pack pack, std::span<uint8_t> dst, NativeWeight* w) {
  const uint64_t rb = *RowBytes(type, static_cast<uint64_t>(s.cols));
  const uint64_t bytes = rb * static_cast<uint64_t>(s.rows);
  uint8_t* target = dst.data();
  if (dst.size() != bytes) {
    auto own = std::make_shared<AlignedBuffer>();
    own->Resize(bytes);
    target = own->data();
    w->owner = own;
  }
  if (s.unpermute_heads == 0) {
    pack(target);
  } else {
    AlignedBuffer hf;
    hf.Resize(bytes);
    pack(hf.data());
    CopyPermutedRows(hf.data(), target, s.rows, rb, s.unpermute_heads, /*to_gguf=*/true);
  }
  w->type = type;
  w->data = target;
}

// The internal type of an 8-bit layer of `cols` columns.
Expected<GgmlType> Int8Type(int64_t cols) {
  if (cols > kMaxInt8Cols) return Errorf("rows of {} columns are more than the int8 kernels' {}", cols, kMaxInt8Cols);
  return Int8RowType(cols);
}

}  // namespace

uint64_t BnbNativeBytes(const BnbSource& s) {
  Expected<GgmlType> type = Int8Type(s.cols);
  if (!s.eight_bit) {
    Expected<Bnb4State> state = ReadBnb4State(*s.tensors, s.prefix);
    if (!state.ok()) return 0;
    type = Bnb4RowType(state->type, s.cols, state->blocksize);
  }
  if (!type.ok()) return 0;
  return *RowBytes(*type, static_cast<uint64_t>(s.cols)) * static_cast<uint64_t>(s.rows);
}

Expected<NativeWeight> ToNativeBnb(const BnbSource& s, std::span<uint8_t> dst) {
  NativeWeight w;
  w.rows = s.rows;
  w.stored_cols = s.cols;
  if (!s.eight_bit) {
    LOWBIT_ASSIGN_OR_RETURN(Bnb4Linear L, ReadBnb4Linear(*s.tensors, s.prefix, s.rows, s.cols));
    Expected<GgmlType> type = Bnb4RowType(L.state.type, s.cols, L.state.blocksize);
    if (type.ok()) {
      SetPackedRows(s, *type, [&](uint8_t* out) { PackBnb4Rows(*type, L.packed.data(), L.absmax, s.rows, s.cols, L.state.blocksize, out); },
                    dst, &w);
      return w;
    }
    w.note = type.status().message();
  } else {
    Expected<GgmlType> type = Int8Type(s.cols);
    if (type.ok()) {
      LOWBIT_ASSIGN_OR_RETURN(Bnb8Linear L, ReadBnb8Linear(*s.tensors, s.prefix, s.rows, s.cols));
      SetPackedRows(s, *type, [&](uint8_t* out) {
        PackInt8Rows(*type, reinterpret_cast<const int8_t*>(L.q.data()), L.scb, s.rows, s.cols, out);
      }, dst, &w);
      w.outlier_threshold = static_cast<float>(s.int8_threshold);
      return w;
    }
    w.note = type.status().message();
  }
  LOWBIT_ASSIGN_OR_RETURN(std::vector<float> v, ReadBnbValues(s));
  auto buf = std::make_shared<std::vector<float>>(std::move(v));
  w.type = GgmlType::kF32;
  w.data = reinterpret_cast<const uint8_t*>(buf->data());
  w.owner = buf;
  return w;
}

}  // namespace lowbit

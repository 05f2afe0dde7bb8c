#include "lowbit/train/weights.h"

#include "lowbit/base/check.h"
#include "lowbit/kernels/matvec.h"

namespace lowbit::train {

std::string LayerWeightName(int64_t layer, int slot) {
  return "blk." + std::to_string(layer) + "." + kLayerWeights[static_cast<size_t>(slot)] + ".weight";
}

Linear& SlotOf(Weights::Layer& l, int slot) {
  Linear* s[7] = {&l.wq, &l.wk, &l.wv, &l.wo, &l.gate, &l.up, &l.down};
  return *s[slot];
}

const WeightView& SlotOf(const LlamaModel::Layer& l, int slot) {
  const WeightView* s[7] = {&l.wq, &l.wk, &l.wv, &l.wo, &l.gate, &l.up, &l.down};
  return *s[slot];
}

// A mapped weight (a GPTQ / AWQ folder's grouped rows: stored columns padded or in act-order) keeps
// its map for the forward product; its F32 values are scattered back to the input's columns.
Linear FrozenBase::Frozen(const WeightView& v, ThreadPool* pool) {
  const int64_t cols = v.x_map != nullptr ? v.x_stride : v.cols;
  auto f = std::make_unique<std::vector<float>>(static_cast<size_t>(v.rows * cols));
  float* dst = f->data();
  auto run = [&](size_t b, size_t e) {
    std::vector<float> stored(v.x_map != nullptr ? static_cast<size_t>(v.cols) : 0);
    for (size_t r = b; r < e; ++r) {
      if (v.x_map == nullptr) {
        DequantizeRowOf(v.type, v.data, v.cols, static_cast<int64_t>(r), dst + r * cols, v.row_stride);
        continue;
      }
      DequantizeRowOf(v.type, v.data, v.cols, static_cast<int64_t>(r), stored.data(), v.row_stride);
      for (int64_t c = 0; c < v.cols; ++c) {
        if (v.x_map[c] >= 0) dst[r * cols + v.x_map[c]] = stored[static_cast<size_t>(c)];
      }
    }
  };
  if (pool != nullptr && pool->size() > 1) pool->ParallelFor(static_cast<size_t>(v.rows), run, 16);
  else run(0, static_cast<size_t>(v.rows));
  Linear l{.rows = v.rows, .cols = cols, .type = v.type, .data = v.data, .row_stride = v.row_stride, .x_map = v.x_map,
           .stored_cols = v.x_map != nullptr ? v.cols : 0, .w = dst};
  store_.push_back(std::move(f));
  return l;
}

FrozenBase::FrozenBase(const LlamaModel& m, ThreadPool* pool) {
  LOWBIT_CHECK_MSG(m.ranks() == 1, "training needs the whole model (one rank)");
  const LlamaConfig& c = m.config();
  Linear emb = Frozen(m.token_embd, pool);
  w_.tok_embd = emb.w;
  w_.output_norm = reinterpret_cast<const float*>(m.output_norm.data);
  w_.output = m.output.data == m.token_embd.data ? emb : Frozen(m.output, pool);  // tied: the embedding's rows
  w_.layers.resize(static_cast<size_t>(c.n_layer));
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const LlamaModel::Layer& L = m.layers[static_cast<size_t>(l)];
    Weights::Layer& W = w_.layers[static_cast<size_t>(l)];
    W.attn_norm = reinterpret_cast<const float*>(L.attn_norm.data);
    W.ffn_norm = reinterpret_cast<const float*>(L.ffn_norm.data);
    for (int k = 0; k < 7; ++k) SlotOf(W, k) = Frozen(SlotOf(L, k), pool);
    W.wq.bias = L.bq;
    W.wk.bias = L.bk;
    W.wv.bias = L.bv;
  }
}

}  // namespace lowbit::train

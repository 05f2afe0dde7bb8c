// How the training graph's Weights are built from a model: the 2-D weights of a layer by slot, and
// the frozen base (a quantized GGUF's weights as the engine holds them, plus F32 copies for the
// backward) that fine-tuning trains adapters on.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "lowbit/model/llama.h"
#include "lowbit/train/graph.h"

namespace lowbit::train {

// The seven 2-D weights of a layer, in this order everywhere in train/.
inline constexpr std::array<const char*, 7> kLayerWeights = {"attn_q", "attn_k", "attn_v", "attn_output",
                                                             "ffn_gate", "ffn_up", "ffn_down"};
std::string LayerWeightName(int64_t layer, int slot);  // "blk.3.attn_q.weight"
Linear& SlotOf(Weights::Layer& l, int slot);
const WeightView& SlotOf(const LlamaModel::Layer& l, int slot);

// A frozen model: every 2-D weight runs its forward on the model's own bytes (MatMul) and its
// backward on an F32 copy; the embedding rows and the norms are F32. Gradients: none.
class FrozenBase {
 public:
  explicit FrozenBase(const LlamaModel& m, ThreadPool* pool);
  const Weights& weights() const { return w_; }
  Weights& weights() { return w_; }

 private:
  Linear Frozen(const WeightView& v, ThreadPool* pool);
  std::vector<std::unique_ptr<std::vector<float>>> store_;
  Weights w_;
};

}  // namespace lowbit::train

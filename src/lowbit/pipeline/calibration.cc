#include "lowbit/pipeline/calibration.h"

#include <algorithm>
#include <cstring>

#include "lowbit/base/check.h"
#include "lowbit/base/mapped_file.h"
#include "lowbit/kernels/matvec.h"
#include "lowbit/tokenizer/tokenizer.h"

namespace lowbit {
namespace {

// splitmix64: a fixed generator, so the same seed draws the same windows everywhere.
uint64_t NextRandom(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Which distinct input a matrix reads: q/k/v share one, gate/up another.
int InputGroup(LayerMatrix m) {
  switch (m) {
    case LayerMatrix::kQ: case LayerMatrix::kK: case LayerMatrix::kV: return 0;
    case LayerMatrix::kO: return 1;
    case LayerMatrix::kGate: case LayerMatrix::kUp: return 2;
    case LayerMatrix::kDown: return 3;
  }
  return 0;
}

}  // namespace

const char* LayerMatrixName(LayerMatrix m) {
  static constexpr const char* kNames[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
  return kNames[static_cast<int>(m)];
}

WeightView& LayerMatrixView(LlamaModel::Layer& L, LayerMatrix m) {
  switch (m) {
    case LayerMatrix::kQ: return L.wq;
    case LayerMatrix::kK: return L.wk;
    case LayerMatrix::kV: return L.wv;
    case LayerMatrix::kO: return L.wo;
    case LayerMatrix::kGate: return L.gate;
    case LayerMatrix::kUp: return L.up;
    case LayerMatrix::kDown: return L.down;
  }
  return L.wq;
}

Expected<std::vector<std::vector<int32_t>>> DrawCalibrationSamples(const Vocab& vocab, const CalibrationOptions& o) {
  if (o.nsamples < 1 || o.seqlen < 2) return Errorf("calibration needs at least 1 sample of 2 tokens ({} x {} asked)", o.nsamples, o.seqlen);
  LOWBIT_ASSIGN_OR_RETURN(MappedFile text, MappedFile::Open(o.text_path));
  LOWBIT_ASSIGN_OR_RETURN(auto tok, Tokenizer::Create(vocab));
  const std::vector<int32_t> tokens =
      tok->Encode(std::string_view(reinterpret_cast<const char*>(text.data()), text.size()));
  const int64_t windows = static_cast<int64_t>(tokens.size()) / o.seqlen;
  if (windows < o.nsamples) {
    return Errorf("{}: its {} tokens hold {} windows of {} tokens, fewer than the {} samples asked; give a longer "
                  "--calib text or lower --nsamples / --seqlen", o.text_path, tokens.size(), windows, o.seqlen, o.nsamples);
  }
  std::vector<int64_t> order(static_cast<size_t>(windows));
  for (int64_t i = 0; i < windows; ++i) order[i] = i;
  uint64_t state = o.seed;
  for (int64_t i = windows - 1; i > 0; --i) {  // Fisher-Yates
    const int64_t j = static_cast<int64_t>(NextRandom(&state) % static_cast<uint64_t>(i + 1));
    std::swap(order[i], order[j]);
  }
  order.resize(static_cast<size_t>(o.nsamples));
  std::sort(order.begin(), order.end());
  const bool bos = vocab.add_bos > 0 && vocab.bos_id >= 0;
  std::vector<std::vector<int32_t>> samples;
  samples.reserve(order.size());
  for (int64_t w : order) {
    auto begin = tokens.begin() + w * o.seqlen;
    samples.emplace_back(begin, begin + o.seqlen);
    if (bos) samples.back()[0] = static_cast<int32_t>(vocab.bos_id);
  }
  return samples;
}

LayerCalibrator::LayerCalibrator(LlamaModel* model, std::vector<std::vector<int32_t>> samples, ThreadPool* pool)
    : model_(model), samples_(std::move(samples)) {
  LOWBIT_CHECK_MSG(!samples_.empty() && model->ranks() == 1, "calibration runs on a whole model with samples");
  seqlen_ = static_cast<int64_t>(samples_[0].size());
  const int64_t E = model->config().n_embd;
  session_ = std::make_unique<LlamaSession>(*model, SessionOptions{.n_ctx = seqlen_, .threads = pool->size(), .max_batch = seqlen_, .pool = pool});
  hidden_.resize(static_cast<size_t>(n_samples() * seqlen_ * E));
  out_.resize(static_cast<size_t>(seqlen_ * E));
  for (int64_t s = 0; s < n_samples(); ++s) {
    LOWBIT_CHECK_MSG(static_cast<int64_t>(samples_[s].size()) == seqlen_, "samples of different lengths");
    for (int64_t t = 0; t < seqlen_; ++t) {
      DequantizeRowOf(model->token_embd.type, model->token_embd.data, E, samples_[s][t], hidden_.data() + (s * seqlen_ + t) * E,
                      model->token_embd.row_stride);
    }
  }
}

LayerCalibrator::~LayerCalibrator() = default;

void LayerCalibrator::MakeLayerFloat(int64_t l) {
  LlamaModel::Layer& L = model_->layers[l];
  float_layer_ = l;
  for (LayerMatrix m : kLayerMatrices) {
    WeightView& w = LayerMatrixView(L, m);
    std::vector<float>& buf = float_[static_cast<int>(m)];
    buf.resize(static_cast<size_t>(w.rows * w.cols));
    for (int64_t r = 0; r < w.rows; ++r) DequantizeRowOf(w.type, w.data, w.cols, r, buf.data() + r * w.cols, w.row_stride);
    w = WeightView{.type = GgmlType::kF32, .data = reinterpret_cast<const uint8_t*>(buf.data()), .rows = w.rows, .cols = w.cols,
                   .row_stride = static_cast<uint64_t>(w.cols) * 4};
  }
}

std::span<float> LayerCalibrator::Matrix(LayerMatrix m) {
  LOWBIT_CHECK_MSG(float_layer_ >= 0, "no layer made float");
  return float_[static_cast<int>(m)];
}

void LayerCalibrator::FreeLayer() {
  for (auto& b : float_) std::vector<float>().swap(b);
  float_layer_ = -1;
}

void LayerCalibrator::Pass(int64_t l, Sublayer part, std::span<const LayerMatrix> want, const InputFn& on_input,
                           const std::function<void(int64_t, const float*)>& on_output) {
  const int64_t E = model_->config().n_embd;
  // The first wanted matrix of each distinct input, and its rows for one sample.
  std::array<int, 4> first = {-1, -1, -1, -1};
  for (LayerMatrix m : want) {
    int& f = first[InputGroup(m)];
    if (f < 0) f = static_cast<int>(m);
  }
  std::array<std::vector<float>, 4> rows;
  std::array<int64_t, 4> width = {0, 0, 0, 0};
  std::array<int64_t, 4> seen = {0, 0, 0, 0};
  std::array<std::string, 7> names;
  for (LayerMatrix m : kLayerMatrices) names[static_cast<int>(m)] = "blk." + std::to_string(l) + "." + LayerMatrixName(m) + ".weight";
  session_->SetObserver([&](const std::string& name, const float* x, int64_t n) {
    for (int g = 0; g < 4; ++g) {
      if (first[g] < 0 || name != names[first[g]]) continue;
      if (rows[g].size() < static_cast<size_t>(seqlen_ * n)) rows[g].resize(static_cast<size_t>(seqlen_ * n));
      width[g] = n;
      std::memcpy(rows[g].data() + seen[g] * n, x, static_cast<size_t>(n) * sizeof(float));
      ++seen[g];
    }
  });
  for (int64_t s = 0; s < n_samples(); ++s) {
    seen = {0, 0, 0, 0};
    const float* x = hidden_.data() + s * seqlen_ * E;
    if (part == Sublayer::kAttention) session_->AttentionBlock(l, x, seqlen_, out_.data());
    else session_->FfnBlock(l, x, seqlen_, out_.data());
    for (int g = 0; g < 4; ++g) {
      if (first[g] < 0) continue;
      LOWBIT_CHECK_MSG(seen[g] == seqlen_, "matrix {} of layer {} was not observed in this sublayer", LayerMatrixName(static_cast<LayerMatrix>(first[g])), l);
      on_input(static_cast<LayerMatrix>(first[g]), rows[g].data(), seqlen_, width[g]);
    }
    if (on_output) on_output(s, out_.data());
  }
  session_->SetObserver({});
}

void LayerCalibrator::SetHidden(std::vector<float> h) {
  LOWBIT_CHECK_MSG(h.size() == hidden_.size(), "hidden states of {} floats, expected {}", h.size(), hidden_.size());
  hidden_ = std::move(h);
}

void LayerCalibrator::FinalNorm(int64_t s, float* out) const {
  session_->OutputNorm(Hidden(s), seqlen_, out);
}

void LayerCalibrator::Advance(int64_t l, Sublayer part) {
  const int64_t E = model_->config().n_embd;
  for (int64_t s = 0; s < n_samples(); ++s) {
    float* x = hidden_.data() + s * seqlen_ * E;
    if (part == Sublayer::kAttention) session_->AttentionBlock(l, x, seqlen_, out_.data());
    else session_->FfnBlock(l, x, seqlen_, out_.data());
    for (int64_t i = 0; i < seqlen_ * E; ++i) x[i] += out_[i];
  }
}

}  // namespace lowbit

// The whole training forward/backward on a tiny synthetic llama: every parameter's gradient
// (embedding, norms, every linear, biases, the classifier, LoRA A and B) against finite differences
// of the loss, for both RoPE layouts, a partial rotary dimension, grouped-query heads and two
// sequences per micro-batch.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "lowbit/train/graph.h"

namespace lowbit::train {
namespace {

struct Tensor {
  std::vector<float> v, g;
  Tensor() = default;
  Tensor(int64_t n, std::mt19937& rng, float scale, float offset = 0.0f) : v(static_cast<size_t>(n)), g(static_cast<size_t>(n), 0.0f) {
    std::normal_distribution<float> nd(0.0f, scale);
    for (auto& x : v) x = offset + nd(rng);
  }
};

struct TinyModel {
  LlamaConfig c;
  Tensor emb, onorm, out;
  struct L {
    Tensor an, fn, q, k, v, o, gate, up, down, bq, bk, bv;
  };
  std::vector<L> layers;
  std::vector<Tensor> lora_a, lora_b;
  std::vector<LoraParam> lora;
  Weights w;

  TinyModel(bool neox, int64_t rope_dim, std::mt19937& rng) {
    c.arch = "test";
    c.n_vocab = 11;
    c.n_embd = 16;
    c.n_layer = 2;
    c.n_head = 4;
    c.n_head_kv = 2;
    c.head_dim = 4;
    c.n_ff = 24;
    c.rope_dim = rope_dim;
    c.n_ctx_train = 8;
    c.rope_neox = neox;
    const int64_t E = c.n_embd, Q = c.n_head * c.head_dim, KV = c.n_head_kv * c.head_dim, F = c.n_ff;
    emb = Tensor(c.n_vocab * E, rng, 1.0f);
    onorm = Tensor(E, rng, 0.1f, 1.0f);
    out = Tensor(c.n_vocab * E, rng, 0.3f);
    layers.resize(2);
    for (L& l : layers) {
      l.an = Tensor(E, rng, 0.1f, 1.0f);
      l.fn = Tensor(E, rng, 0.1f, 1.0f);
      l.q = Tensor(Q * E, rng, 0.3f);
      l.k = Tensor(KV * E, rng, 0.3f);
      l.v = Tensor(KV * E, rng, 0.3f);
      l.o = Tensor(E * Q, rng, 0.3f);
      l.gate = Tensor(F * E, rng, 0.3f);
      l.up = Tensor(F * E, rng, 0.3f);
      l.down = Tensor(E * F, rng, 0.3f);
      l.bq = Tensor(Q, rng, 0.1f);
      l.bk = Tensor(KV, rng, 0.1f);
      l.bv = Tensor(KV, rng, 0.1f);
    }
    const int64_t r = 3;
    for (int i = 0; i < 4; ++i) {  // layer 0/1 wq (Q x E), layer 0/1 down (E x F)
      const bool down = i >= 2;
      lora_a.emplace_back(r * (down ? F : E), rng, 0.3f);
      lora_b.emplace_back((down ? E : Q) * r, rng, 0.3f);
    }
    lora.resize(4);
    for (int i = 0; i < 4; ++i) {
      lora[i] = {.rank = r, .scale = 0.7f, .a = lora_a[i].v.data(), .b = lora_b[i].v.data(), .da = lora_a[i].g.data(),
                 .db = lora_b[i].g.data()};
    }
    auto lin = [](Tensor& t, int64_t rows, int64_t cols) {
      return Linear{.rows = rows, .cols = cols, .w = t.v.data(), .dw = t.g.data()};
    };
    w.tok_embd = emb.v.data();
    w.d_tok_embd = emb.g.data();
    w.output_norm = onorm.v.data();
    w.d_output_norm = onorm.g.data();
    w.output = lin(out, c.n_vocab, E);
    for (int64_t li = 0; li < 2; ++li) {
      L& l = layers[li];
      Weights::Layer wl;
      wl.attn_norm = l.an.v.data();
      wl.d_attn_norm = l.an.g.data();
      wl.ffn_norm = l.fn.v.data();
      wl.d_ffn_norm = l.fn.g.data();
      wl.wq = lin(l.q, Q, E);
      wl.wq.bias = l.bq.v.data();
      wl.wq.dbias = l.bq.g.data();
      wl.wq.lora = &lora[li];
      wl.wk = lin(l.k, KV, E);
      wl.wk.bias = l.bk.v.data();
      wl.wk.dbias = l.bk.g.data();
      wl.wv = lin(l.v, KV, E);
      wl.wv.bias = l.bv.v.data();
      wl.wv.dbias = l.bv.g.data();
      wl.wo = lin(l.o, E, Q);
      wl.gate = lin(l.gate, F, E);
      wl.up = lin(l.up, F, E);
      wl.down = lin(l.down, E, F);
      wl.down.lora = &lora[2 + li];
      w.layers.push_back(wl);
    }
  }

  std::vector<Tensor*> All() {
    std::vector<Tensor*> t = {&emb, &onorm, &out};
    for (L& l : layers) {
      for (Tensor* x : {&l.an, &l.fn, &l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down, &l.bq, &l.bk, &l.bv}) t.push_back(x);
    }
    for (auto& x : lora_a) t.push_back(&x);
    for (auto& x : lora_b) t.push_back(&x);
    return t;
  }
};

void RunCheck(bool neox, int64_t rope_dim) {
  std::mt19937 rng(neox ? 11 : 12);
  TinyModel m(neox, rope_dim, rng);
  ThreadPool pool(2);
  const int64_t seqs = 2, T = 6, R = seqs * T;
  Graph graph(m.c, seqs, T, &pool);
  std::vector<int32_t> tokens(R), targets(R);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(m.c.n_vocab - 1));
  for (auto& t : tokens) t = tok(rng);
  for (auto& t : targets) t = tok(rng);
  std::vector<float> scratch(R * m.c.n_vocab);
  auto loss = [&] {
    const float* logits = graph.Forward(m.w, tokens.data());
    return CrossEntropy(logits, targets.data(), R, m.c.n_vocab, 1.0f, scratch.data(), nullptr);
  };
  const float* logits = graph.Forward(m.w, tokens.data());
  CrossEntropy(logits, targets.data(), R, m.c.n_vocab, 1.0f, graph.dlogits(), nullptr);
  graph.Backward(m.w);
  int k = 0;
  for (Tensor* t : m.All()) {
    std::uniform_int_distribution<size_t> pick(0, t->v.size() - 1);
    for (int s = 0; s < 6; ++s) {
      const size_t i = pick(rng);
      const float keep = t->v[i], h = 1e-2f;
      t->v[i] = keep + h;
      const double up = loss();
      t->v[i] = keep - h;
      const double down = loss();
      t->v[i] = keep;
      const double num = (up - down) / (2.0 * h);
      EXPECT_NEAR(t->g[i], num, 3e-3 + 2e-2 * std::fabs(num)) << "tensor " << k << " coordinate " << i << (neox ? " neox" : "");
    }
    ++k;
  }
}

TEST(TrainGraph, GradientsMatchFiniteDifferencesAdjacentRope) { RunCheck(false, 4); }
TEST(TrainGraph, GradientsMatchFiniteDifferencesNeoxPartialRope) { RunCheck(true, 2); }

TEST(TrainGraph, GradientsAccumulateOverMicroBatches) {
  std::mt19937 rng(5);
  TinyModel m(false, 4, rng);
  Graph graph(m.c, 1, 4, nullptr);
  std::vector<int32_t> tokens = {1, 2, 3, 4}, targets = {2, 3, 4, 5};
  auto step = [&] {
    CrossEntropy(graph.Forward(m.w, tokens.data()), targets.data(), 4, m.c.n_vocab, 1.0f, graph.dlogits(), nullptr);
    graph.Backward(m.w);
  };
  step();
  const std::vector<float> once = m.layers[1].q.g;
  step();
  for (size_t i = 0; i < once.size(); ++i) EXPECT_NEAR(m.layers[1].q.g[i], 2 * once[i], 1e-5f + 1e-5f * std::fabs(once[i]));
}

}  // namespace
}  // namespace lowbit::train

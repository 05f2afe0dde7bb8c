#include "lowbit/eval/imatrix_collect.h"

#include <map>

#include "lowbit/tokenizer/tokenizer.h"

namespace lowbit {

Expected<Imatrix> CollectImatrix(const LlamaModel& model, const Vocab& vocab, const std::string& text,
                                 const ImatrixOptions& o, const std::function<void(int64_t, int64_t)>& on_chunk) {
  const int64_t ctx = o.ctx > 0 ? o.ctx : model.config().n_ctx_train;
  LOWBIT_ASSIGN_OR_RETURN(auto tok, Tokenizer::Create(vocab));
  const std::vector<int32_t> tokens = tok->EncodeWithBos(text);
  const bool add_bos = vocab.add_bos > 0 && vocab.bos_id >= 0;
  int64_t n_chunk = static_cast<int64_t>(tokens.size()) / ctx;
  if (o.chunks >= 0) n_chunk = std::min(n_chunk, o.chunks);
  if (n_chunk == 0) return Errorf("the text has {} tokens, fewer than one context of {}", tokens.size(), ctx);

  struct Acc {
    std::vector<double> sum;
    int64_t rows = 0;
  };
  std::map<std::string, Acc> acc;  // ordered: deterministic file order
  LlamaSession session(model, ctx, o.threads);
  session.SetObserver([&](const std::string& name, const float* x, int64_t n) {
    Acc& a = acc[name];
    if (a.sum.empty()) a.sum.assign(static_cast<size_t>(n), 0.0);
    for (int64_t i = 0; i < n; ++i) a.sum[i] += static_cast<double>(x[i]) * x[i];
    ++a.rows;
  });
  for (int64_t i = 0; i < n_chunk; ++i) {
    std::vector<int32_t> chunk(tokens.begin() + i * ctx, tokens.begin() + (i + 1) * ctx);
    if (add_bos) chunk[0] = static_cast<int32_t>(vocab.bos_id);
    session.Forward(chunk, 0);
    if (on_chunk) on_chunk(i + 1, n_chunk);
  }
  Imatrix m;
  m.dataset = o.dataset;
  m.last_call = static_cast<int32_t>(n_chunk);
  for (auto& [name, a] : acc) {
    ImatrixEntry e;
    e.name = name;
    e.ncall = static_cast<int32_t>(n_chunk);
    e.values.resize(a.sum.size());
    for (size_t i = 0; i < a.sum.size(); ++i) e.values[i] = static_cast<float>(a.sum[i] / static_cast<double>(a.rows));
    m.entries.push_back(std::move(e));
  }
  return m;
}

}  // namespace lowbit

#include "lowbit/eval/perplexity.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>

#include "lowbit/base/atomic_file.h"
#include "lowbit/base/mapped_file.h"
#include "lowbit/parallel/agree.h"
#include "lowbit/tokenizer/tokenizer.h"

namespace lowbit {
namespace {

constexpr char kMagic[8] = {'L', 'B', 'L', 'O', 'G', 'P', '0', '1'};

struct LogitsHeader {
  char magic[8];
  int64_t ctx, n_vocab, n_chunks, n_scored, n_tokens;
};

// Reads and checks a reference distribution against this run's text and model.
Expected<MappedFile> OpenBase(const std::string& path, const LogitsHeader& want, const std::vector<int32_t>& tokens) {
  LOWBIT_ASSIGN_OR_RETURN(MappedFile f, MappedFile::Open(path));
  LogitsHeader h{};
  if (f.size() < sizeof(h)) return Errorf("{}: too short for a logits file", path);
  std::memcpy(&h, f.data(), sizeof(h));
  if (std::memcmp(h.magic, kMagic, 8) != 0) return Errorf("{}: not a lowbit --save-logits file", path);
  if (h.ctx != want.ctx || h.n_vocab != want.n_vocab || h.n_chunks != want.n_chunks || h.n_tokens != want.n_tokens) {
    return Errorf("{}: made with context {}, vocabulary {}, {} chunks of a {}-token text; this run has {}, {}, {}, {}",
                  path, h.ctx, h.n_vocab, h.n_chunks, h.n_tokens, want.ctx, want.n_vocab, want.n_chunks, want.n_tokens);
  }
  const uint64_t expect = sizeof(h) + static_cast<uint64_t>(h.n_tokens) * 4 +
                          static_cast<uint64_t>(h.n_scored) * static_cast<uint64_t>(h.n_vocab) * 4;
  if (f.size() != expect) return Errorf("{}: {} bytes, expected {}; truncated?", path, f.size(), expect);
  if (std::memcmp(f.data() + sizeof(h), tokens.data(), tokens.size() * 4) != 0) {
    return Errorf("{}: was made on a different text", path);
  }
  return f;
}

}  // namespace

Expected<PerplexityResult> Perplexity(const LlamaModel& model, const Vocab& vocab, const std::string& text,
                                      const PerplexityOptions& opts,
                                      const std::function<void(int64_t, double)>& on_chunk) {
  const LlamaConfig& c = model.config();
  const int64_t ctx = opts.ctx > 0 ? opts.ctx : c.n_ctx_train;
  if (ctx < 2) return Errorf("context {} is too small to score anything", ctx);
  LocalComm local;
  Comm* comm = opts.comm != nullptr ? opts.comm : &local;
  const bool leader = comm->rank() == 0;
  std::vector<int32_t> tokens;
  bool add_bos = false;
  // Rank 0 tokenizes; the others receive the tokens.
  const Status tokenized = [&]() -> Status {
    if (!leader) return OkStatus();
    LOWBIT_ASSIGN_OR_RETURN(auto tok, Tokenizer::Create(vocab));
    tokens = tok->EncodeWithBos(text);
    add_bos = vocab.add_bos > 0 && vocab.bos_id >= 0;
    return OkStatus();
  }();
  LOWBIT_RETURN_IF_ERROR(AgreeOnStatus(comm, tokenized));
  int64_t head[3] = {static_cast<int64_t>(tokens.size()), add_bos ? 1 : 0, vocab.bos_id};
  comm->Broadcast(head, sizeof(head), 0);
  tokens.resize(static_cast<size_t>(head[0]));
  comm->Broadcast(tokens.data(), tokens.size() * sizeof(int32_t), 0);
  add_bos = head[1] != 0;
  const auto bos_id = static_cast<int32_t>(head[2]);
  PerplexityResult r;
  r.n_tokens = static_cast<int64_t>(tokens.size());
  int64_t n_chunk = r.n_tokens / ctx;
  if (opts.chunks >= 0) n_chunk = std::min(n_chunk, opts.chunks);
  if (n_chunk == 0) {
    return Errorf("the text has {} tokens, fewer than one context of {}; use a smaller -c", r.n_tokens, ctx);
  }
  r.n_chunks = n_chunk;
  LlamaSession session(model, SessionOptions{.n_ctx = ctx, .threads = opts.threads, .max_batch = std::min<int64_t>(ctx, 512),
                                             .kv_f16 = opts.kv_f16, .comm = comm});
  const int64_t first = ctx / 2;
  double nll = 0, nll2 = 0;
  int64_t count = 0;
  const LogitsHeader header{{'L', 'B', 'L', 'O', 'G', 'P', '0', '1'}, ctx, c.n_vocab, n_chunk, n_chunk * (ctx - 1 - first),
                            static_cast<int64_t>(tokens.size())};
  std::optional<AtomicFile> save;
  std::optional<MappedFile> base;
  // Only rank 0 writes or reads the distribution files.
  const Status opened = [&]() -> Status {
    if (!leader) return OkStatus();
    if (!opts.save_logits.empty()) {
      LOWBIT_ASSIGN_OR_RETURN(AtomicFile f, AtomicFile::Create(opts.save_logits));
      save.emplace(std::move(f));
      LOWBIT_RETURN_IF_ERROR(save->Write(&header, sizeof(header)));
      LOWBIT_RETURN_IF_ERROR(save->Write(tokens.data(), tokens.size() * 4));
    }
    if (!opts.kl_base.empty()) {
      LOWBIT_ASSIGN_OR_RETURN(MappedFile f, OpenBase(opts.kl_base, header, tokens));
      base.emplace(std::move(f));
    }
    return OkStatus();
  }();
  LOWBIT_RETURN_IF_ERROR(AgreeOnStatus(comm, opened));
  const float* base_lp = base ? reinterpret_cast<const float*>(base->data() + sizeof(header) + tokens.size() * 4) : nullptr;
  std::vector<float> lp(static_cast<size_t>(c.n_vocab));
  std::vector<double> klds;
  std::vector<int32_t> chunk;
  double base_nll = 0, sum_dp = 0;
  int64_t agree = 0;
  Status write_error;  // rank 0 keeps running the chunks with the others, then all stop together
  for (int64_t i = 0; i < n_chunk; ++i) {
    const int64_t start = i * ctx;
    chunk.assign(tokens.begin() + start, tokens.begin() + start + ctx - 1);
    if (add_bos) chunk[0] = bos_id;
    const float* all = session.Forward(chunk, 0, /*all_logits=*/true);
    if (!leader) continue;  // rank 0 scores
    for (int64_t j = first; j < ctx - 1; ++j) {
      const float* logits = all + j * c.n_vocab;
      const float mx = *std::max_element(logits, logits + c.n_vocab);
      double sum = 0;
      for (int64_t v = 0; v < c.n_vocab; ++v) sum += std::exp(static_cast<double>(logits[v]) - mx);
      const double log_sum = std::log(sum);
      const int32_t next = tokens[start + j + 1];
      const double lpn = static_cast<double>(logits[next]) - mx - log_sum;
      nll -= lpn;
      nll2 += lpn * lpn;
      if (save || base) {
        for (int64_t v = 0; v < c.n_vocab; ++v) lp[v] = static_cast<float>(static_cast<double>(logits[v]) - mx - log_sum);
      }
      if (save && write_error.ok()) write_error = save->Write(lp.data(), lp.size() * 4);
      if (base) {
        const float* b = base_lp + count * c.n_vocab;
        double kld = 0;
        for (int64_t v = 0; v < c.n_vocab; ++v) kld += std::exp(static_cast<double>(b[v])) * (static_cast<double>(b[v]) - lp[v]);
        klds.push_back(kld);
        agree += (std::max_element(b, b + c.n_vocab) - b) == (std::max_element(lp.begin(), lp.end()) - lp.begin());
        sum_dp += std::exp(static_cast<double>(lp[next])) - std::exp(static_cast<double>(b[next]));
        base_nll -= b[next];
      }
      ++count;
    }
    r.running_ppl.push_back(std::exp(nll / static_cast<double>(count)));
    if (on_chunk) on_chunk(i, r.running_ppl.back());
  }
  r.n_scored = count;
  if (save && write_error.ok()) write_error = save->Commit();
  LOWBIT_RETURN_IF_ERROR(AgreeOnStatus(comm, write_error));
  if (!leader) return r;
  if (base) {
    r.has_kl = true;
    const auto n = static_cast<double>(count);
    double total = 0;
    for (double k : klds) total += k;
    r.kl.mean = total / n;
    r.kl.max = *std::max_element(klds.begin(), klds.end());
    std::nth_element(klds.begin(), klds.begin() + static_cast<long>(klds.size() / 2), klds.end());
    r.kl.median = klds[klds.size() / 2];
    r.kl.top1_agreement = static_cast<double>(agree) / n;
    r.kl.mean_delta_p = sum_dp / n;
    r.kl.ppl_base = std::exp(base_nll / n);
  }
  const double mean = nll / static_cast<double>(count);
  r.ppl = std::exp(mean);
  const double var = nll2 / static_cast<double>(count) - mean * mean;
  r.ppl_err = var > 0 && count > 1 ? std::sqrt(var / static_cast<double>(count - 1)) * r.ppl : 0;
  if (r.has_kl) r.kl.ppl_ratio = r.ppl / r.kl.ppl_base;
  return r;
}

}  // namespace lowbit

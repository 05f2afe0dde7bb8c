#include "lowbit/tokenizer/tokenizer.h"

#include <algorithm>

#include "lowbit/tokenizer/bpe.h"
#include "lowbit/tokenizer/spm.h"

namespace lowbit {
namespace {

class SpmAdapter final : public Tokenizer {
 public:
  explicit SpmAdapter(const Vocab& v) : Tokenizer(v), impl_(v) {}
  std::vector<int32_t> Encode(std::string_view text) const override { return impl_.Encode(text); }
  std::string Decode(int32_t t) const override { return impl_.Decode(t); }

 private:
  std::vector<int32_t> EncodeFragment(std::string_view text, bool after_special) const override {
    return impl_.Encode(text, after_special && vocab_.add_space_prefix != 0);
  }
  SpmTokenizer impl_;
};

class BpeAdapter final : public Tokenizer {
 public:
  BpeAdapter(const Vocab& v, BpeTokenizer impl) : Tokenizer(v), impl_(std::move(impl)) {}
  std::vector<int32_t> Encode(std::string_view text) const override { return impl_.Encode(text); }
  std::string Decode(int32_t t) const override { return impl_.Decode(t); }

 private:
  std::vector<int32_t> EncodeFragment(std::string_view text, bool) const override { return impl_.Encode(text); }
  BpeTokenizer impl_;
};

}  // namespace

Tokenizer::Tokenizer(const Vocab& v) : vocab_(v) {
  for (size_t i = 0; i < v.tokens.size() && i < v.token_types.size(); ++i) {
    const auto type = static_cast<TokenType>(v.token_types[i]);
    if ((type == TokenType::kControl || type == TokenType::kUserDefined || type == TokenType::kUnknown) && !v.tokens[i].empty()) {
      special_.push_back(static_cast<int32_t>(i));
    }
  }
  std::stable_sort(special_.begin(), special_.end(), [&](int32_t a, int32_t b) { return v.tokens[a].size() > v.tokens[b].size(); });
  for (int32_t id : special_) special_first_[static_cast<unsigned char>(v.tokens[id][0])] = true;
}

std::vector<int32_t> Tokenizer::EncodeSpecial(std::string_view text, bool add_bos) const {
  std::vector<int32_t> out;
  bool after_special = true;
  size_t start = 0;  // of the text not encoded yet
  auto flush = [&](size_t end) {
    if (end > start) {
      const std::vector<int32_t> part = EncodeFragment(text.substr(start, end - start), after_special);
      out.insert(out.end(), part.begin(), part.end());
      after_special = false;
    }
  };
  for (size_t pos = 0; pos < text.size();) {
    int32_t hit = -1;
    if (special_first_[static_cast<unsigned char>(text[pos])]) {
      for (int32_t id : special_) {
        const std::string& piece = vocab_.tokens[id];
        if (text.compare(pos, piece.size(), piece) == 0) {
          hit = id;
          break;
        }
      }
    }
    if (hit < 0) {
      ++pos;
      continue;
    }
    flush(pos);
    out.push_back(hit);
    after_special = true;
    pos += vocab_.tokens[hit].size();
    start = pos;
  }
  flush(text.size());
  if (add_bos && vocab_.add_bos > 0 && vocab_.bos_id >= 0 && (out.empty() || out[0] != vocab_.bos_id)) out.insert(out.begin(), static_cast<int32_t>(vocab_.bos_id));
  return out;
}

Expected<std::unique_ptr<Tokenizer>> Tokenizer::Create(const Vocab& vocab) {
  if (vocab.model == "llama") return std::unique_ptr<Tokenizer>(std::make_unique<SpmAdapter>(vocab));
  if (vocab.model == "gpt2" || vocab.model == "gemma4") {
    LOWBIT_ASSIGN_OR_RETURN(BpeTokenizer bpe, BpeTokenizer::Create(vocab));
    return std::unique_ptr<Tokenizer>(std::make_unique<BpeAdapter>(vocab, std::move(bpe)));
  }
  return Errorf("tokenizer model '{}' is not supported (lowbit has 'llama' SentencePiece-style, 'gpt2' byte-level BPE and 'gemma4' BPE)",
                vocab.model);
}

std::vector<int32_t> Tokenizer::EncodeWithBos(std::string_view text) const {
  std::vector<int32_t> out;
  if (vocab_.add_bos > 0 && vocab_.bos_id >= 0) out.push_back(static_cast<int32_t>(vocab_.bos_id));
  const std::vector<int32_t> body = Encode(text);
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

}  // namespace lowbit

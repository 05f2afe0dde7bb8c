#include "lowbit/tokenizer/tokenizer.h"

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
  SpmTokenizer impl_;
};

class BpeAdapter final : public Tokenizer {
 public:
  BpeAdapter(const Vocab& v, BpeTokenizer impl) : Tokenizer(v), impl_(std::move(impl)) {}
  std::vector<int32_t> Encode(std::string_view text) const override { return impl_.Encode(text); }
  std::string Decode(int32_t t) const override { return impl_.Decode(t); }

 private:
  BpeTokenizer impl_;
};

}  // namespace

Expected<std::unique_ptr<Tokenizer>> Tokenizer::Create(const Vocab& vocab) {
  if (vocab.model == "llama") return std::unique_ptr<Tokenizer>(std::make_unique<SpmAdapter>(vocab));
  if (vocab.model == "gpt2") {
    LOWBIT_ASSIGN_OR_RETURN(BpeTokenizer bpe, BpeTokenizer::Create(vocab));
    return std::unique_ptr<Tokenizer>(std::make_unique<BpeAdapter>(vocab, std::move(bpe)));
  }
  return Errorf("tokenizer model '{}' is not supported (lowbit has 'llama' SentencePiece-style and 'gpt2' byte-level BPE)",
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

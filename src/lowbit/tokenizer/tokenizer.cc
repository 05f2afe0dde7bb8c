#include "lowbit/tokenizer/tokenizer.h"

#include <algorithm>
#include <cctype>

#include "lowbit/tokenizer/bpe.h"
#include "lowbit/tokenizer/spm.h"

namespace lowbit {
namespace {

class SpmAdapter final : public Tokenizer {
 public:
  explicit SpmAdapter(const Vocab& v) : Tokenizer(v), impl_(v) {}
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
  std::string Decode(int32_t t) const override { return impl_.Decode(t); }

 private:
  std::vector<int32_t> EncodeFragment(std::string_view text, bool) const override { return impl_.EncodeText(text); }
  BpeTokenizer impl_;
};

// Token texts llama.cpp takes for end-of-generation tokens and so marks as control whatever their
// stored type (llama-vocab.cpp): they are never matched in text unless special tokens are parsed.
bool EndOfGenerationText(const std::string& t) {
  for (const char* eog : {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
                          "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
                          "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
                          "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>", "[e~["}) {
    if (t == eog) return true;
  }
  return false;
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

}  // namespace

Tokenizer::Tokenizer(const Vocab& v) : vocab_(v) {
  // llama.cpp strips the whitespace after Phi-3's special tokens (by model name), except these three.
  std::string name = v.name;
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const bool phi3 = name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos;
  // llama.cpp's two exceptions to the end-of-generation rule: with Gemma 4's "<|tool_response>",
  // "</s>" is a normal token; with gpt-oss's "<|return|>" and "<|call|>" (or "<|calls|>" and
  // "<|flush|>"), "<|end|>" is user-defined.
  auto has = [&](const char* t) { return std::find(v.tokens.begin(), v.tokens.end(), t) != v.tokens.end(); };
  const bool s_normal = has("<|tool_response>");
  const bool end_user_defined = has("<|end|>") && ((has("<|return|>") && has("<|call|>")) || (has("<|calls|>") && has("<|flush|>")));
  for (size_t i = 0; i < v.tokens.size() && i < v.token_types.size(); ++i) {
    auto type = static_cast<TokenType>(v.token_types[i]);
    const std::string& text = v.tokens[i];
    bool eog = EndOfGenerationText(text);
    if (s_normal && text == "</s>") {
      type = TokenType::kNormal;
      eog = false;
    } else if (end_user_defined && text == "<|end|>") {
      type = TokenType::kUserDefined;
      eog = false;
    }
    if (text.empty() || !(eog || type == TokenType::kControl || type == TokenType::kUserDefined || type == TokenType::kUnknown)) {
      continue;
    }
    Special s{static_cast<int32_t>(i), eog || type != TokenType::kUserDefined, false, false};
    if (phi3) s.rstrip = text != "<unk>" && text != "<s>" && text != "<|endoftext|>";
    special_.push_back(s);
  }
  std::stable_sort(special_.begin(), special_.end(),
                   [&](const Special& a, const Special& b) { return v.tokens[a.id].size() > v.tokens[b.id].size(); });
}

std::vector<int32_t> Tokenizer::Partitioned(std::string_view text, bool parse_special) const {
  struct Frag {
    int32_t id;  // -1: text [off, off + len)
    size_t off, len;
  };
  std::vector<Frag> frags;
  if (!text.empty()) frags.push_back({-1, 0, text.size()});
  for (const Special& s : special_) {
    if (s.control && !parse_special) continue;
    const std::string& piece = vocab_.tokens[s.id];
    std::vector<Frag> next;
    next.reserve(frags.size());
    for (const Frag& f : frags) {
      if (f.id >= 0) {
        next.push_back(f);
        continue;
      }
      size_t off = f.off, len = f.len;
      for (;;) {
        const size_t at = text.substr(0, off + len).find(piece, off);
        if (at == std::string_view::npos) {
          if (len > 0) next.push_back({-1, off, len});
          break;
        }
        size_t left = at - off;
        if (s.lstrip) {
          while (left > 0 && IsSpace(text[off + left - 1])) --left;
        }
        if (left > 0) next.push_back({-1, off, left});
        next.push_back({s.id, 0, 0});
        const size_t end = off + len;
        off = at + piece.size();
        if (s.rstrip) {
          while (off < end && IsSpace(text[off])) ++off;
        }
        len = end - off;
        if (len == 0) break;
      }
    }
    frags = std::move(next);
  }
  std::vector<int32_t> out;
  bool after_special = true;
  for (const Frag& f : frags) {
    if (f.id >= 0) {
      out.push_back(f.id);
      after_special = true;
      continue;
    }
    const std::vector<int32_t> part = EncodeFragment(text.substr(f.off, f.len), after_special);
    out.insert(out.end(), part.begin(), part.end());
    after_special = false;
  }
  return out;
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text) const { return Partitioned(text, false); }

std::vector<int32_t> Tokenizer::EncodeSpecial(std::string_view text, bool add_bos) const {
  std::vector<int32_t> out = Partitioned(text, true);
  if (add_bos && vocab_.add_bos > 0 && vocab_.bos_id >= 0 && (out.empty() || out[0] != vocab_.bos_id)) {
    out.insert(out.begin(), static_cast<int32_t>(vocab_.bos_id));
  }
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

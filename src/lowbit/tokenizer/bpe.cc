#include "lowbit/tokenizer/bpe.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <queue>

#include "lowbit/tokenizer/utf8.h"

namespace lowbit {

struct BpeTokenizer::Regex {
  pcre2_code* code = nullptr;
  ~Regex() { pcre2_code_free(code); }
};

namespace {

std::string Utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// Pre-tokenizer expressions by tokenizer.ggml.pre (llama.cpp's, written for PCRE2).
std::vector<std::string> PreTokenizerRegexes(const std::string& pre) {
  if (pre == "llama-bpe" || pre == "llama3") {
    return {"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
            "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"};
  }
  if (pre == "qwen2") {
    return {"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
            "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"};
  }
  return {"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"};
}

struct Sym {
  int prev, next;
  size_t begin, size;
};

struct Pair {
  int left, right;
  int32_t rank;
  size_t size;
  bool operator<(const Pair& o) const { return rank > o.rank || (rank == o.rank && left > o.left); }
};

}  // namespace

Expected<BpeTokenizer> BpeTokenizer::Create(const Vocab& vocab) {
  BpeTokenizer t;
  t.vocab_ = &vocab;
  for (const std::string& pattern : PreTokenizerRegexes(vocab.pre)) {
    int err = 0;
    PCRE2_SIZE offset = 0;
    auto re = std::make_shared<Regex>();
    re->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), PCRE2_ZERO_TERMINATED,
                             PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &offset, nullptr);
    if (re->code == nullptr) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof(msg));
      return Errorf("pre-tokenizer expression does not compile at {}: {}", offset, reinterpret_cast<char*>(msg));
    }
    pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if unavailable
    t.regexes_.push_back(re);
  }
  for (size_t i = 0; i < vocab.tokens.size(); ++i) t.ids_.emplace(vocab.tokens[i], static_cast<int32_t>(i));
  for (size_t r = 0; r < vocab.merges.size(); ++r) t.ranks_.emplace(vocab.merges[r], static_cast<int32_t>(r));
  // GPT-2's byte-to-unicode: printable bytes map to themselves, the others to 256 + n.
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    t.byte_char_[b] = Utf8(printable ? static_cast<uint32_t>(b) : static_cast<uint32_t>(256 + n++));
    t.char_byte_.emplace(t.byte_char_[b], static_cast<uint8_t>(b));
  }
  return t;
}

void BpeTokenizer::EncodeWord(const std::string& w, std::vector<int32_t>& out) const {
  std::vector<Sym> sym;
  for (size_t off = 0; off < w.size();) {
    const size_t len = std::min(Utf8Length(static_cast<uint8_t>(w[off])), w.size() - off);
    const int index = static_cast<int>(sym.size());
    sym.push_back({index - 1, off + len == w.size() ? -1 : index + 1, off, len});
    off += len;
  }
  std::priority_queue<Pair> queue;
  auto try_add = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    std::string key = w.substr(sym[l].begin, sym[l].size);
    key += ' ';
    key += w.substr(sym[r].begin, sym[r].size);
    auto it = ranks_.find(key);
    if (it != ranks_.end()) queue.push({l, r, it->second, sym[l].size + sym[r].size});
  };
  for (int i = 1; i < static_cast<int>(sym.size()); ++i) try_add(i - 1, i);
  while (!queue.empty()) {
    const Pair p = queue.top();
    queue.pop();
    Sym& l = sym[p.left];
    Sym& r = sym[p.right];
    if (l.size == 0 || r.size == 0 || l.size + r.size != p.size || l.next != p.right) continue;
    l.size += r.size;
    r.size = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = p.left;
    try_add(l.prev, p.left);
    try_add(p.left, l.next);
  }
  for (int i = 0; i != -1 && !sym.empty(); i = sym[i].next) {
    const std::string piece = w.substr(sym[i].begin, sym[i].size);
    auto it = ids_.find(piece);
    if (it != ids_.end()) {
      out.push_back(it->second);
      continue;
    }
    for (size_t off = 0; off < piece.size();) {  // unmergeable: one token per mapped byte
      const size_t len = Utf8Length(static_cast<uint8_t>(piece[off]));
      auto one = ids_.find(piece.substr(off, len));
      if (one != ids_.end()) out.push_back(one->second);
      off += len;
    }
  }
}

std::vector<int32_t> BpeTokenizer::Encode(std::string_view text) const {
  // Split: each expression splits every piece, keeping matches and the text between them.
  std::vector<std::string> pieces{std::string(text)};
  pcre2_match_data* md = pcre2_match_data_create(1, nullptr);
  for (const auto& re : regexes_) {
    std::vector<std::string> next;
    for (const std::string& p : pieces) {
      PCRE2_SIZE start = 0;
      while (start < p.size()) {
        const int rc = pcre2_match(re->code, reinterpret_cast<PCRE2_SPTR>(p.data()), p.size(), start, 0, md, nullptr);
        if (rc < 0) break;
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        if (ov[0] > start) next.push_back(p.substr(start, ov[0] - start));
        if (ov[1] == ov[0]) {  // empty match: step one character
          const size_t len = std::min(Utf8Length(static_cast<uint8_t>(p[ov[0]])), p.size() - ov[0]);
          next.push_back(p.substr(ov[0], len));
          start = ov[0] + len;
          continue;
        }
        next.push_back(p.substr(ov[0], ov[1] - ov[0]));
        start = ov[1];
      }
      if (start < p.size()) next.push_back(p.substr(start));
    }
    pieces = std::move(next);
  }
  pcre2_match_data_free(md);
  std::vector<int32_t> out;
  for (const std::string& p : pieces) {
    std::string mapped;
    for (char c : p) mapped += byte_char_[static_cast<uint8_t>(c)];
    EncodeWord(mapped, out);
  }
  return out;
}

std::string BpeTokenizer::Decode(int32_t token) const {
  if (token < 0 || static_cast<size_t>(token) >= vocab_->tokens.size()) return {};
  const std::string& t = vocab_->tokens[token];
  std::string s;
  for (size_t off = 0; off < t.size();) {
    const size_t len = std::min(Utf8Length(static_cast<uint8_t>(t[off])), t.size() - off);
    auto it = char_byte_.find(t.substr(off, len));
    if (it != char_byte_.end()) s += static_cast<char>(it->second);
    else s += t.substr(off, len);
    off += len;
  }
  return s;
}

}  // namespace lowbit

#include "lowbit/tokenizer/bpe.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cstdio>
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

// Pre-tokenizer expressions by tokenizer.ggml.pre: llama.cpp's lists (each expression splits the
// pieces the previous ones left), written for PCRE2 with UTF + UCP.
std::vector<std::string> PreTokenizerRegexes(const std::string& pre) {
  const std::string gpt2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
  if (pre == "llama-bpe" || pre == "llama3" || pre == "dbrx" || pre == "smaug-bpe") {
    return {"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
            "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"};
  }
  if (pre == "qwen35") {  // qwen2's, with combining marks (\p{M}) kept in letter runs
    return {"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| "
            "?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"};
  }
  if (pre == "gemma4") return {"[^\\n]+|[\\n]+"};  // SentencePiece-style BPE: only newline runs are split off
  if (pre == "qwen2" || pre == "stablelm2" || pre == "deepseek-r1-qwen") {
    return {"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
            "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"};
  }
  if (pre == "deepseek-llm") {
    // The second class is Unicode's cased letters as DeepSeek's tokenizer.json lists them, spelled
    // as code points (some of them change under NFC, so literal characters are fragile).
    return {"[\r\n]",
            "\\s?[\\x{41}-\\x{5a}\\x{61}-\\x{7a}\\x{b5}\\x{c0}-\\x{d6}\\x{d8}-\\x{f6}\\x{f8}-\\x{1ba}\\x{1bc}-\\x{1bf}"
            "\\x{1c4}-\\x{293}\\x{295}-\\x{2af}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37b}-\\x{37d}\\x{37f}\\x{386}"
            "\\x{388}-\\x{38a}\\x{38c}\\x{38e}-\\x{3a1}\\x{3a3}-\\x{3f5}\\x{3f7}-\\x{481}\\x{48a}-\\x{52f}"
            "\\x{531}-\\x{556}\\x{10a0}-\\x{10c5}\\x{13a0}-\\x{13f5}\\x{13f8}-\\x{13fd}\\x{1c90}-\\x{1cba}"
            "\\x{1cbd}-\\x{1cbf}\\x{1d00}-\\x{1d2b}\\x{1d6b}-\\x{1d77}\\x{1d79}-\\x{1d9a}\\x{1e00}-\\x{1f15}"
            "\\x{1f18}-\\x{1f1d}\\x{1f20}-\\x{1f45}\\x{1f48}-\\x{1f4d}\\x{1f50}-\\x{1f57}\\x{1f59}\\x{1f5b}"
            "\\x{1f5d}\\x{1f5f}-\\x{1f7d}\\x{1f80}-\\x{1fb4}\\x{1fb6}-\\x{1fbc}\\x{1fbe}\\x{1fc2}-\\x{1fc4}"
            "\\x{1fc6}-\\x{1fcc}\\x{1fd0}-\\x{1fd3}\\x{1fd6}-\\x{1fdb}\\x{1fe0}-\\x{1fec}\\x{1ff2}-\\x{1ff4}"
            "\\x{1ff6}-\\x{1ffc}\\x{2102}\\x{2107}\\x{210a}-\\x{2113}\\x{2115}\\x{2119}-\\x{211d}\\x{2124}"
            "\\x{2126}\\x{2128}\\x{212a}-\\x{212d}\\x{212f}-\\x{2134}\\x{2139}\\x{213c}-\\x{213f}\\x{2145}-"
            "\\x{2149}\\x{214e}\\x{2183}\\x{2184}\\x{2c00}-\\x{2c7b}\\x{2c7e}-\\x{2ce4}\\x{2ceb}-\\x{2cee}"
            "\\x{2cf2}\\x{2cf3}\\x{a640}-\\x{a66d}\\x{a680}-\\x{a69b}\\x{a722}-\\x{a76f}\\x{a771}-\\x{a787}"
            "\\x{a78b}-\\x{a78e}\\x{ab70}-\\x{abbf}\\x{fb00}-\\x{fb06}\\x{fb13}-\\x{fb17}\\x{ff21}-\\x{ff3a}"
            "\\x{ff41}-\\x{ff5a}\\x{10400}-\\x{1044f}\\x{104b0}-\\x{104d3}\\x{104d8}-\\x{104fb}\\x{10c80}-"
            "\\x{10cb2}\\x{10cc0}-\\x{10cf2}\\x{118a0}-\\x{118df}\\x{1e900}-\\x{1e943}]+",
            "\\s?[!-/:-~！-／：-～‘-‟　-。]+",
            "\\s+$",
            "[一-龥ࠀ-一가-퟿]+",
            "\\p{N}+"};
  }
  if (pre == "deepseek-coder") {
    return {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}"};
  }
  if (pre == "falcon") {
    return {"[\\p{P}\\$\\+<=>\\^~\\|`]+", "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
            "[0-9][0-9][0-9]"};
  }
  if (pre == "starcoder" || pre == "refact" || pre == "command-r" || pre == "smollm" || pre == "codeshell" || pre == "exaone") {
    return {"\\p{N}", "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"};
  }
  if (pre == "gpt-2" || pre == "mpt" || pre == "olmo" || pre == "jais") return {gpt2};
  // llama.cpp's default for a vocabulary without a known pre-tokenizer.
  return {"[\\p{P}\\$\\+<=>\\^~\\|]+", "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)", "\\p{N}+",
          "[0-9][0-9][0-9]"};
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

// llama.cpp's pre-tokenizer names whose vocabularies "ignore merges" (Llama 3's tokenizer.json).
bool IgnoresMerges(const std::string& pre) {
  for (const char* name : {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano"}) {
    if (pre == name) return true;
  }
  return false;
}

constexpr const char* kSpaceMark = "\xe2\x96\x81";  // U+2581, SentencePiece's space

}  // namespace

Expected<BpeTokenizer> BpeTokenizer::Create(const Vocab& vocab) {
  BpeTokenizer t;
  t.vocab_ = &vocab;
  const bool gemma4 = vocab.model == "gemma4";
  t.byte_encode_ = !gemma4;
  t.escape_spaces_ = gemma4;
  t.ignore_merges_ = IgnoresMerges(vocab.pre);
  for (const std::string& pattern : PreTokenizerRegexes(gemma4 ? "gemma4" : vocab.pre)) {
    int err = 0;
    PCRE2_SIZE offset = 0;
    auto re = std::make_shared<Regex>();
    re->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), PCRE2_ZERO_TERMINATED,
                             PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY, &err, &offset, nullptr);
    if (re->code == nullptr) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof(msg));
      return Errorf("pre-tokenizer expression does not compile at {}: {}", offset, reinterpret_cast<char*>(msg));
    }
    pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if unavailable
    t.regexes_.push_back(re);
  }
  for (size_t i = 0; i < vocab.tokens.size(); ++i) t.ids_.emplace(vocab.tokens[i], static_cast<int32_t>(i));
  for (size_t i = 0; i < vocab.token_types.size() && i < vocab.tokens.size(); ++i) {
    if (vocab.token_types[i] == static_cast<int32_t>(TokenType::kUserDefined) && !vocab.tokens[i].empty()) {
      t.user_defined_.push_back(static_cast<int32_t>(i));
    }
  }
  std::stable_sort(t.user_defined_.begin(), t.user_defined_.end(),
                   [&](int32_t a, int32_t b) { return vocab.tokens[a].size() > vocab.tokens[b].size(); });
  for (size_t r = 0; r < vocab.merges.size(); ++r) t.ranks_.emplace(vocab.merges[r], static_cast<int32_t>(r));
  // GPT-2's byte-to-unicode: printable bytes map to themselves, the others to 256 + n.
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    t.byte_char_[b] = Utf8(printable ? static_cast<uint32_t>(b) : static_cast<uint32_t>(256 + n++));
    t.char_byte_.emplace(t.byte_char_[b], static_cast<uint8_t>(b));
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    auto it = t.ids_.find(name);
    t.byte_token_[b] = it == t.ids_.end() ? -1 : it->second;
  }
  return t;
}

void BpeTokenizer::EncodeWord(const std::string& w, std::vector<int32_t>& out) const {
  // A whole piece in the vocabulary: Llama 3 takes it without merging; Gemma 4 does so for newline runs.
  if (ignore_merges_ || (escape_spaces_ && w.find_first_not_of('\n') == std::string::npos)) {
    if (auto it = ids_.find(w); it != ids_.end()) {
      out.push_back(it->second);
      return;
    }
  }
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
    if (!byte_encode_) {  // not a token: its bytes as `<0xNN>` tokens
      for (char c : piece) {
        if (byte_token_[static_cast<uint8_t>(c)] >= 0) out.push_back(byte_token_[static_cast<uint8_t>(c)]);
      }
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
  // User-defined (added) tokens are matched in the raw text first, longest first, as llama.cpp does
  // even when special tokens are not parsed; the text between them is tokenized normally.
  std::vector<int32_t> out;
  if (!user_defined_.empty()) {
    struct Frag {
      std::string_view text;
      int32_t id;  // -1: raw text
    };
    std::vector<Frag> frags{{text, -1}};
    for (int32_t id : user_defined_) {
      const std::string& tok = vocab_->tokens[static_cast<size_t>(id)];
      std::vector<Frag> next;
      for (const Frag& f : frags) {
        if (f.id >= 0) {
          next.push_back(f);
          continue;
        }
        size_t start = 0;
        for (size_t at; (at = f.text.find(tok, start)) != std::string_view::npos; start = at + tok.size()) {
          if (at > start) next.push_back({f.text.substr(start, at - start), -1});
          next.push_back({{}, id});
        }
        if (start < f.text.size()) next.push_back({f.text.substr(start), -1});
      }
      frags = std::move(next);
    }
    for (const Frag& f : frags) {
      if (f.id >= 0) {
        out.push_back(f.id);
      } else {
        std::vector<int32_t> part = EncodeText(f.text);
        out.insert(out.end(), part.begin(), part.end());
      }
    }
    return out;
  }
  return EncodeText(text);
}

std::vector<std::string> BpeTokenizer::PreTokenize(std::string_view text) const {
  // Each expression splits every piece, keeping matches and the text between them.
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
  return pieces;
}

std::vector<int32_t> BpeTokenizer::EncodeText(std::string_view raw) const {
  std::string escaped;
  if (escape_spaces_) {
    escaped.reserve(raw.size() + raw.size() / 2);
    for (char c : raw) {
      if (c == ' ') escaped += kSpaceMark;
      else escaped += c;
    }
    raw = escaped;
  }
  std::vector<int32_t> out;
  for (const std::string& p : PreTokenize(raw)) {
    if (!byte_encode_) {
      EncodeWord(p, out);
      continue;
    }
    std::string mapped;
    for (char c : p) mapped += byte_char_[static_cast<uint8_t>(c)];
    EncodeWord(mapped, out);
  }
  return out;
}

std::string BpeTokenizer::Decode(int32_t token) const {
  if (token < 0 || static_cast<size_t>(token) >= vocab_->tokens.size()) return {};
  const std::string& t = vocab_->tokens[token];
  if (static_cast<size_t>(token) < vocab_->token_types.size() &&
      vocab_->token_types[token] == static_cast<int32_t>(TokenType::kUserDefined)) {
    return t;  // added tokens are stored as raw text
  }
  if (!byte_encode_) {  // gemma4: byte tokens are `<0xNN>`, U+2581 is a space
    if (static_cast<size_t>(token) < vocab_->token_types.size() &&
        vocab_->token_types[token] == static_cast<int32_t>(TokenType::kByte) && t.size() == 6) {
      return std::string(1, static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16)));
    }
    std::string s;
    for (size_t i = 0; i < t.size();) {
      if (t.compare(i, 3, kSpaceMark) == 0) {
        s += ' ';
        i += 3;
      } else {
        s += t[i++];
      }
    }
    return s;
  }
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

#include "lowbit/tokenizer/spm.h"

#include <cstdio>
#include <queue>

#include "lowbit/tokenizer/utf8.h"

namespace lowbit {
namespace {

constexpr const char* kSpace = "\xe2\x96\x81";  // U+2581

struct Symbol {
  int prev, next;
  size_t begin, size;  // into the escaped text; size 0 once merged away
};

struct Bigram {
  int left, right;
  float score;
  size_t size;
  bool operator<(const Bigram& o) const {  // max-heap: higher score, then the leftmost pair
    return score < o.score || (score == o.score && left > o.left);
  }
};

}  // namespace

SpmTokenizer::SpmTokenizer(const Vocab& vocab) : vocab_(vocab), add_space_prefix_(vocab.add_space_prefix != 0) {
  ids_.reserve(vocab.tokens.size());
  for (size_t i = 0; i < vocab.tokens.size(); ++i) ids_.emplace(vocab.tokens[i], static_cast<int32_t>(i));
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    int32_t id = Find(name);
    if (id < 0) id = Find(std::string(1, static_cast<char>(b)));
    byte_ids_[b] = id >= 0 ? id : static_cast<int32_t>(vocab.unk_id);
  }
}

int32_t SpmTokenizer::Find(std::string_view piece) const {
  auto it = ids_.find(std::string(piece));
  return it == ids_.end() ? -1 : it->second;
}

void SpmTokenizer::AppendBytes(std::string_view text, std::vector<int32_t>& out) const {
  for (char c : text) out.push_back(byte_ids_[static_cast<uint8_t>(c)]);
}

std::vector<int32_t> SpmTokenizer::Encode(std::string_view raw, bool space_prefix) const {
  std::vector<int32_t> out;
  if (raw.empty()) return out;
  std::string text;
  text.reserve(raw.size() * 3 + 3);
  if (space_prefix) text += kSpace;
  for (char c : raw) {
    if (c == ' ') text += kSpace;
    else text += c;
  }
  std::vector<Symbol> sym;
  for (size_t off = 0; off < text.size();) {
    const size_t n = std::min(Utf8Length(static_cast<uint8_t>(text[off])), text.size() - off);
    const int index = static_cast<int>(sym.size());
    sym.push_back({index - 1, off + n == text.size() ? -1 : index + 1, off, n});
    off += n;
  }
  std::priority_queue<Bigram> queue;
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const size_t size = sym[left].size + sym[right].size;
    const int32_t id = Find(std::string_view(text).substr(sym[left].begin, size));
    if (id < 0) return;
    queue.push({left, right, vocab_.scores.empty() ? 0.0f : vocab_.scores[id], size});
  };
  for (int i = 1; i < static_cast<int>(sym.size()); ++i) try_add(i - 1, i);
  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = sym[b.left];
    Symbol& r = sym[b.right];
    if (l.size == 0 || r.size == 0 || l.size + r.size != b.size) continue;  // stale
    l.size += r.size;
    r.size = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }
  for (int i = 0; i != -1 && !sym.empty(); i = sym[i].next) {
    const std::string_view piece = std::string_view(text).substr(sym[i].begin, sym[i].size);
    const int32_t id = Find(piece);
    if (id >= 0) out.push_back(id);
    else AppendBytes(piece, out);
  }
  return out;
}

std::string SpmTokenizer::Decode(int32_t token) const {
  if (token < 0 || static_cast<size_t>(token) >= vocab_.tokens.size()) return {};
  const std::string& t = vocab_.tokens[token];
  if (!vocab_.token_types.empty() && vocab_.token_types[token] == static_cast<int32_t>(TokenType::kByte) &&
      t.size() == 6) {
    return std::string(1, static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16)));
  }
  std::string s;
  for (size_t i = 0; i < t.size();) {
    if (t.compare(i, 3, kSpace) == 0) {
      s += ' ';
      i += 3;
    } else {
      s += t[i++];
    }
  }
  return s;
}

}  // namespace lowbit

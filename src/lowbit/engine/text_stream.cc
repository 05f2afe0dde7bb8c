#include "lowbit/engine/text_stream.h"

#include <algorithm>

namespace lowbit {
namespace {

// Expected length of a UTF-8 sequence from its lead byte; 0 for a continuation or invalid byte.
size_t SeqLength(unsigned char c) {
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return 2;
  if (c >= 0xE0 && c <= 0xEF) return 3;
  if (c >= 0xF0 && c <= 0xF4) return 4;
  return 0;
}

bool IsCont(unsigned char c) { return (c & 0xC0) == 0x80; }

}  // namespace

size_t IncompleteUtf8Tail(std::string_view s) {
  // Look back at most 3 bytes for a lead byte whose sequence runs past the end.
  const size_t n = s.size();
  for (size_t back = 1; back <= std::min<size_t>(3, n); ++back) {
    const auto c = static_cast<unsigned char>(s[n - back]);
    if (IsCont(c)) continue;
    const size_t len = SeqLength(c);
    return len > back ? back : 0;
  }
  return 0;
}

// Whether `c1` may follow lead byte `c` (the overlong, surrogate and out-of-range forms excluded).
bool SecondOk(unsigned char c, unsigned char c1) {
  if (!IsCont(c1)) return false;
  if (c == 0xE0) return c1 >= 0xA0;
  if (c == 0xED) return c1 <= 0x9F;
  if (c == 0xF0) return c1 >= 0x90;
  if (c == 0xF4) return c1 <= 0x8F;
  return true;
}

std::string SanitizeUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t len = SeqLength(c);
    // The longest valid start of a sequence here ("maximal subpart"): a complete character is kept,
    // an invalid or cut one becomes one U+FFFD, as Python's and the WHATWG decoders do.
    size_t j = 1;
    while (j < len && i + j < s.size() && (j == 1 ? SecondOk(c, static_cast<unsigned char>(s[i + 1])) : IsCont(static_cast<unsigned char>(s[i + j])))) ++j;
    if (len != 0 && j == len) out.append(s.substr(i, len));
    else out += "\xEF\xBF\xBD";
    i += j;
  }
  return out;
}

TextStream::TextStream(std::vector<std::string> stops) : stops_(std::move(stops)) {
  stops_.erase(std::remove(stops_.begin(), stops_.end(), std::string()), stops_.end());
}

bool TextStream::Push(std::string_view piece, std::string* out) {
  if (stopped_) return true;
  held_.append(piece);
  // The earliest complete stop string ends the stream.
  size_t first = std::string::npos;
  for (const std::string& s : stops_) {
    const size_t at = held_.find(s);
    if (at != std::string::npos && (first == std::string::npos || at < first)) {
      first = at;
      matched_ = s;
    }
  }
  if (first != std::string::npos) {
    stopped_ = true;
    out->append(SanitizeUtf8(std::string_view(held_).substr(0, first)));
    held_.clear();
    return true;
  }
  // Hold back the longest tail that begins some stop string, and any incomplete character.
  size_t keep = 0;
  for (const std::string& s : stops_) {
    for (size_t len = std::min(s.size() - 1, held_.size()); len > keep; --len) {
      if (held_.compare(held_.size() - len, len, s, 0, len) == 0) {
        keep = len;
        break;
      }
    }
  }
  const std::string_view release(held_.data(), held_.size() - keep);
  const size_t cut = release.size() - IncompleteUtf8Tail(release);
  if (cut == 0) return false;
  out->append(SanitizeUtf8(release.substr(0, cut)));
  held_.erase(0, cut);
  return false;
}

void TextStream::Finish(std::string* out) {
  if (!stopped_) out->append(SanitizeUtf8(held_));
  held_.clear();
}

}  // namespace lowbit

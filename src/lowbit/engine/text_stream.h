// Streaming detokenized text safely: pieces of token text go in, text that may be shown comes out.
//
// Two things are held back: the bytes of a UTF-8 character that is not complete yet (a character
// is never split across two outputs), and a tail that could be the start of a stop string (a stop
// string is never shown, not even in part, and the text before it is never lost). When a stop
// string appears, the text before it is released and the stream reports the stop; nothing after
// it is released. Finish() releases what is held (an incomplete character at the very end as
// U+FFFD). Released text is valid UTF-8: invalid bytes become U+FFFD, as a whole-text conversion
// would make them, so the streamed pieces always join into the non-streamed text.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace lowbit {

class TextStream {
 public:
  explicit TextStream(std::vector<std::string> stops = {});

  // Appends a token's text; appends to `out` what can be shown now. Returns true when a stop
  // string has been completed (the stream then ignores further input).
  bool Push(std::string_view piece, std::string* out);
  // End of generation: appends what was held back.
  void Finish(std::string* out);
  bool stopped() const { return stopped_; }
  // The stop string that ended the stream (empty if none).
  const std::string& matched_stop() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;  // text not released yet
  bool stopped_ = false;
  std::string matched_;
};

// Bytes at the end of `s` that form the beginning of an incomplete UTF-8 character (0..3).
size_t IncompleteUtf8Tail(std::string_view s);
// `s` with invalid UTF-8 sequences replaced by U+FFFD.
std::string SanitizeUtf8(std::string_view s);

}  // namespace lowbit

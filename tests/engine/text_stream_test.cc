// TextStream: stop strings never leak, not even in part, and never cost the text before them; a
// UTF-8 character is never split across outputs; whatever the pieces, they join into the whole.
#include <gtest/gtest.h>

#include "lowbit/engine/text_stream.h"

namespace lowbit {
namespace {

// Feeds `pieces`; returns the outputs (one per push, then the finish).
std::vector<std::string> Feed(const std::vector<std::string>& pieces, std::vector<std::string> stops, bool* stopped = nullptr) {
  TextStream ts(std::move(stops));
  std::vector<std::string> outs;
  for (const std::string& p : pieces) {
    std::string o;
    const bool s = ts.Push(p, &o);
    outs.push_back(o);
    if (s) break;
  }
  std::string tail;
  ts.Finish(&tail);
  outs.push_back(tail);
  if (stopped) *stopped = ts.stopped();
  return outs;
}

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x;
  return s;
}

TEST(TextStream, StopStringsSplitAcrossPiecesNeverLeak) {
  bool stopped = false;
  auto outs = Feed({"Hello wor", "ld<", "|e", "nd|>", " after"}, {"<|end|>"}, &stopped);
  EXPECT_TRUE(stopped);
  EXPECT_EQ(Join(outs), "Hello world");
  for (const auto& o : outs) EXPECT_EQ(o.find('<'), std::string::npos) << o;
  EXPECT_EQ(outs[0], "Hello wor");  // nothing held back that cannot start the stop string
  EXPECT_EQ(outs[1], "ld");
}

TEST(TextStream, APrefixThatDoesNotCompleteIsReleased) {
  auto outs = Feed({"a <", "|en", "d but not", " really"}, {"<|end|>"});
  EXPECT_EQ(Join(outs), "a <|end but not really");
  EXPECT_EQ(outs[0], "a ");
  EXPECT_EQ(outs[1], "");
}

TEST(TextStream, EarliestOfSeveralStopsWinsAndTextBeforeIsKept) {
  bool stopped = false;
  auto outs = Feed({"one two three"}, {"three", "two"}, &stopped);
  EXPECT_TRUE(stopped);
  EXPECT_EQ(Join(outs), "one ");
}

TEST(TextStream, StopAtTheEndOfTheTextHeldThenDroppedOnlyIfComplete) {
  auto outs = Feed({"abc", "\n\n"}, {"\n\nUser:"});
  EXPECT_EQ(outs[1], "");               // held: might become the stop
  EXPECT_EQ(Join(outs), "abc\n\n");     // released at the end: it did not
}

TEST(TextStream, Utf8CharactersAreNeverSplit) {
  const std::string smile = "\xF0\x9F\x99\x82";  // U+1F642, 4 bytes
  auto outs = Feed({"a", smile.substr(0, 1), smile.substr(1, 2), smile.substr(3), "b"}, {});
  EXPECT_EQ(outs[1], "");
  EXPECT_EQ(outs[2], "");
  EXPECT_EQ(outs[3], smile);
  EXPECT_EQ(Join(outs), "a" + smile + "b");
  // An incomplete character at the very end and invalid bytes become U+FFFD.
  EXPECT_EQ(Join(Feed({"x\xE6\x97"}, {})), "x\xEF\xBF\xBD");
  EXPECT_EQ(Join(Feed({"x\xFF" "y"}, {})), "x\xEF\xBF\xBDy");
  EXPECT_EQ(IncompleteUtf8Tail("ab\xE6\x97"), 2u);
  EXPECT_EQ(IncompleteUtf8Tail("ab\xE6\x97\xA5"), 0u);
}

TEST(TextStream, ByteByByteEqualsWhole) {
  const std::string text = "Ünïcødé text with a STOP in it and 日本語 after";
  std::vector<std::string> bytes;
  for (char c : text) bytes.emplace_back(1, c);
  bool stopped = false;
  auto outs = Feed(bytes, {"STOP"}, &stopped);
  EXPECT_TRUE(stopped);
  EXPECT_EQ(Join(outs), "Ünïcødé text with a ");
  for (const auto& o : outs) EXPECT_EQ(SanitizeUtf8(o), o) << "an output is not valid UTF-8 on its own";
}

}  // namespace
}  // namespace lowbit

#include "lowbit/template/lexer.h"

#include <cctype>

namespace lowbit::jinja {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

class Lexer {
 public:
  explicit Lexer(std::string_view s) : src_(s) {
    // keep_trailing_newline is off in Jinja2: one trailing newline is dropped.
    if (!src_.empty() && src_.back() == '\n') src_.remove_suffix(1);
  }

  Expected<std::vector<Token>> Run() {
    bool strip_next = false;  // the previous tag ended with '-'
    size_t pos = 0;
    while (pos < src_.size()) {
      size_t open = FindTagStart(pos);
      std::string text(src_.substr(pos, open - pos));
      if (strip_next) {
        size_t k = 0;
        while (k < text.size() && IsSpace(text[k])) ++k;
        text.erase(0, k);
      }
      strip_next = false;
      if (open == src_.size()) {
        Emit(Tok::kText, std::move(text));
        break;
      }
      const char type = src_[open + 1];  // '{', '%' or '#'
      const char mod = open + 2 < src_.size() ? src_[open + 2] : '\0';
      if (mod == '-') {
        while (!text.empty() && IsSpace(text.back())) text.pop_back();
      } else if (type != '{' && mod != '+') {
        // lstrip_blocks: spaces and tabs from the start of the line to a block or comment tag.
        size_t k = text.size();
        while (k > 0 && (text[k - 1] == ' ' || text[k - 1] == '\t')) --k;
        if ((k > 0 && text[k - 1] == '\n') || (k == 0 && AtLineStart(open - text.size()))) text.erase(k);
      }
      line_ = LineAt(pos);
      Emit(Tok::kText, std::move(text));
      size_t body = open + 2 + ((mod == '-' || mod == '+') ? 1 : 0);
      line_ = LineAt(open);
      size_t close;
      bool right_minus = false;
      if (type == '#') {
        close = src_.find("#}", body);
        if (close == std::string_view::npos) return Errorf("template line {}: comment is not closed", line_);
        right_minus = close > body && src_[close - 1] == '-';
      } else {
        Emit(type == '{' ? Tok::kExprBegin : Tok::kStmtBegin, "");
        LOWBIT_ASSIGN_OR_RETURN(close, LexTag(body, type == '{' ? '}' : '%', &right_minus));
        Emit(type == '{' ? Tok::kExprEnd : Tok::kStmtEnd, "");
      }
      pos = close + 2;
      if (right_minus) {
        strip_next = true;
      } else if (type != '{') {
        // trim_blocks: the first newline after a block or comment tag.
        if (pos < src_.size() && src_[pos] == '\n') ++pos;
        else if (pos + 1 < src_.size() && src_[pos] == '\r' && src_[pos + 1] == '\n') pos += 2;
      }
    }
    Emit(Tok::kEnd, "");
    return std::move(out_);
  }

 private:
  bool AtLineStart(size_t at) const { return at == 0 || src_[at - 1] == '\n'; }
  // Line of byte `at`; calls come with non-decreasing positions.
  int LineAt(size_t at) {
    for (; counted_ < at && counted_ < src_.size(); ++counted_) counted_line_ += src_[counted_] == '\n';
    return counted_line_;
  }

  size_t FindTagStart(size_t from) const {
    for (size_t i = from; i + 1 < src_.size(); ++i) {
      if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    }
    return src_.size();
  }

  void Emit(Tok k, std::string text) {
    if (k == Tok::kText && text.empty()) return;
    out_.push_back({k, std::move(text), line_});
  }

  // Tokens of a tag body from `pos` to its closing "}}" or "%}" (`close` is '}' or '%'); returns
  // the position of the closing pair.
  Expected<size_t> LexTag(size_t pos, char close, bool* right_minus) {
    int depth = 0;  // brackets: "}}" inside a dict literal does not close an expression
    while (true) {
      while (pos < src_.size() && IsSpace(src_[pos])) ++pos;
      line_ = LineAt(pos);
      if (pos >= src_.size()) return Errorf("template line {}: tag is not closed", line_);
      const char c = src_[pos];
      const char n = pos + 1 < src_.size() ? src_[pos + 1] : '\0';
      const char n2 = pos + 2 < src_.size() ? src_[pos + 2] : '\0';
      if (depth == 0 && c == '-' && n == close && n2 == '}') {
        *right_minus = true;
        return pos + 1;
      }
      if (depth == 0 && c == close && n == '}') return pos;
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t e = pos;
        while (e < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
        Emit(Tok::kName, std::string(src_.substr(pos, e - pos)));
        pos = e;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        size_t e = pos;
        while (e < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
        bool is_float = false;
        if (e + 1 < src_.size() && src_[e] == '.' && std::isdigit(static_cast<unsigned char>(src_[e + 1]))) {
          is_float = true;
          ++e;
          while (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) ++e;
        }
        if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
          size_t f = e + 1;
          if (f < src_.size() && (src_[f] == '+' || src_[f] == '-')) ++f;
          if (f < src_.size() && std::isdigit(static_cast<unsigned char>(src_[f]))) {
            is_float = true;
            e = f;
            while (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) ++e;
          }
        }
        std::string num(src_.substr(pos, e - pos));
        std::erase(num, '_');
        Emit(is_float ? Tok::kFloat : Tok::kInt, std::move(num));
        pos = e;
      } else if (c == '\'' || c == '"') {
        LOWBIT_ASSIGN_OR_RETURN(pos, LexString(pos));
      } else {
        static constexpr const char* kTwo[] = {"==", "!=", "<=", ">=", "//", "**"};
        std::string op(1, c);
        for (const char* t : kTwo) {
          if (c == t[0] && n == t[1]) op = t;
        }
        if (op.size() == 1 && std::string_view("<>+-*/%~|.,:()[]{}=!").find(c) == std::string_view::npos) {
          return Errorf("template line {}: unexpected character '{}'", line_, c);
        }
        if (op == "!") return Errorf("template line {}: unexpected character '!'", line_);
        if (op == "(" || op == "[" || op == "{") ++depth;
        if ((op == ")" || op == "]" || op == "}") && depth > 0) --depth;
        Emit(Tok::kOp, op);
        pos += op.size();
      }
    }
  }

  Expected<size_t> LexString(size_t pos) {
    const char q = src_[pos++];
    std::string s;
    while (pos < src_.size() && src_[pos] != q) {
      char c = src_[pos++];
      if (c == '\\' && pos < src_.size()) {
        const char e = src_[pos++];
        switch (e) {
          case 'n': c = '\n'; break;
          case 't': c = '\t'; break;
          case 'r': c = '\r'; break;
          case 'b': c = '\b'; break;
          case 'f': c = '\f'; break;
          case '\\': c = '\\'; break;
          case '\'': c = '\''; break;
          case '"': c = '"'; break;
          default:
            s += '\\';  // Python keeps unknown escapes as they are
            c = e;
        }
      }
      s += c;
    }
    if (pos >= src_.size()) return Errorf("template line {}: string literal is not closed", line_);
    Emit(Tok::kString, std::move(s));
    return pos + 1;
  }

  std::string_view src_;
  std::vector<Token> out_;
  int line_ = 1;
  size_t counted_ = 0;
  int counted_line_ = 1;
};

}  // namespace

Expected<std::vector<Token>> Lex(std::string_view source) { return Lexer(source).Run(); }

}  // namespace lowbit::jinja

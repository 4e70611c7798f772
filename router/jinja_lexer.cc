// Template text -> tokens, reproducing jinja2's lexer (jinja2/lexer.py) with trim_blocks=True and
// lstrip_blocks=True, the settings transformers renders chat templates with.
#include <algorithm>
#include <array>

#include "router/jinja_ast.h"

namespace kubemoe::router::jinja {
namespace {

// The operators jinja2 knows, longest first so that a longest match wins.
constexpr std::array<std::string_view, 26> kOperators = {
    "//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[",
    "]",  "(",  ")",  "{",  "}",  ">",  "<", "=", ".", ":", "|", ",", ";"};

bool IsNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsNameChar(char c) { return IsNameStart(c) || IsDigit(c); }

// jinja2 reads "\r\n" and "\r" as "\n" and, without keep_trailing_newline, drops one final "\n".
std::string NormalizeNewlines(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    *out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    *out += static_cast<char>(0xC0 | (cp >> 6));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *out += static_cast<char>(0xE0 | (cp >> 12));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    *out += static_cast<char>(0xF0 | (cp >> 18));
    *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class Lexer {
 public:
  explicit Lexer(std::string_view source) : src_(NormalizeNewlines(source)) {}

  StatusOr<std::vector<Token>> Run() {
    bool line_starting = true;  // did the previous match end with a newline (jinja2's flag)?
    while (pos_ < src_.size()) {
      size_t start = FindTagStart(pos_);
      std::string text = src_.substr(pos_, start - pos_);
      if (start == std::string::npos) {
        Emit(TokenKind::kText, std::move(text));
        pos_ = src_.size();
        break;
      }
      char kind = src_[start + 1];  // '{' variable, '%' block, '#' comment
      char sign = start + 2 < src_.size() ? src_[start + 2] : '\0';
      if (sign != '-' && sign != '+') sign = '\0';
      if (sign == '-') {
        text.resize(PyRstripLength(text));
      } else if (sign != '+' && kind != '{') {
        // lstrip_blocks: drop whitespace between the line start and a block or comment tag.
        size_t line_start = text.rfind('\n');
        line_start = line_start == std::string::npos ? 0 : line_start + 1;
        // jinja2 3.1 tests the rest of the line with \s, i.e. Python's Unicode whitespace.
        if ((line_start > 0 || line_starting) &&
            PyLstripLength(std::string_view(text).substr(line_start)) == 0) {
          text.resize(line_start);
        }
      }
      Emit(TokenKind::kText, std::move(text));
      pos_ = start + 2 + (sign ? 1 : 0);
      line_ = LineAt(start);
      Status status = kind == '#' ? SkipComment() : LexTag(kind == '{');
      if (!status.ok()) return status;
      line_starting = pos_ > 0 && src_[pos_ - 1] == '\n';
    }
    tokens_.push_back({TokenKind::kEnd, "", 0, LineAt(src_.size())});
    return std::move(tokens_);
  }

 private:
  size_t FindTagStart(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) {
        return i;
      }
    }
    return std::string::npos;
  }

  int LineAt(size_t pos) const {
    pos = std::min(pos, src_.size());
    return 1 + static_cast<int>(std::count(src_.begin(), src_.begin() + pos, '\n'));
  }

  void Emit(TokenKind kind, std::string value, int64_t integer = 0) {
    if (kind == TokenKind::kText && value.empty()) return;
    tokens_.push_back({kind, std::move(value), integer, line_});
  }

  Status Error(const std::string& what) const {
    return InvalidArgument("chat template line " + std::to_string(LineAt(pos_)) + ": " + what);
  }

  // Skips to the end of a comment, applying its closing whitespace control.
  Status SkipComment() {
    size_t end = src_.find("#}", pos_);
    if (end == std::string::npos) return Error("missing end of comment tag");
    char sign = end > pos_ ? src_[end - 1] : '\0';
    pos_ = end + 2;
    ApplyEndControl(sign);
    return Status::Ok();
  }

  // After a block or comment end: `-` eats all following whitespace, `+` nothing, and otherwise
  // trim_blocks eats one newline.
  void ApplyEndControl(char sign) {
    if (sign == '-') {
      while (size_t n = PyWhitespaceAt(src_, pos_)) pos_ += n;
    } else if (sign != '+' && pos_ < src_.size() && src_[pos_] == '\n') {
      ++pos_;
    }
  }

  bool At(std::string_view s) const { return src_.compare(pos_, s.size(), s) == 0; }

  // Tries to end the tag at pos_; returns true when it did.
  bool TryEnd(bool variable) {
    if (variable) {
      if (At("-}}")) {
        pos_ += 3;
        ApplyEndControl('-');
        Emit(TokenKind::kVarEnd, "}}");
        return true;
      }
      if (At("}}")) {
        pos_ += 2;
        Emit(TokenKind::kVarEnd, "}}");
        return true;
      }
      return false;
    }
    char sign = '\0';
    if (At("-%}") || At("+%}")) {
      sign = src_[pos_];
      pos_ += 3;
    } else if (At("%}")) {
      pos_ += 2;
    } else {
      return false;
    }
    ApplyEndControl(sign);
    Emit(TokenKind::kBlockEnd, "%}");
    return true;
  }

  Status LexTag(bool variable) {
    Emit(variable ? TokenKind::kVarBegin : TokenKind::kBlockBegin, variable ? "{{" : "{%");
    std::vector<char> brackets;  // jinja2 ends a tag only where brackets balance
    while (true) {
      while (size_t n = PyWhitespaceAt(src_, pos_)) pos_ += n;
      if (pos_ >= src_.size()) {
        return Error(std::string("unexpected end of template, expected '") +
                     (variable ? "}}" : "%}") + "'");
      }
      line_ = LineAt(pos_);
      if (brackets.empty() && TryEnd(variable)) return Status::Ok();
      char c = src_[pos_];
      if (IsNameStart(c)) {
        size_t end = pos_;
        while (end < src_.size() && IsNameChar(src_[end])) ++end;
        Emit(TokenKind::kName, src_.substr(pos_, end - pos_));
        pos_ = end;
      } else if (IsDigit(c)) {
        KUBEMOE_RETURN_IF_ERROR(LexNumber());
      } else if (c == '\'' || c == '"') {
        KUBEMOE_RETURN_IF_ERROR(LexString(c));
      } else {
        std::string_view op;
        for (std::string_view candidate : kOperators) {
          if (At(candidate)) {
            op = candidate;
            break;
          }
        }
        if (op.empty()) {
          return Error(static_cast<unsigned char>(c) >= 0x80
                           ? "non-ASCII names are not supported"
                           : std::string("unexpected character '") + c + "'");
        }
        if (op == "(" || op == "[" || op == "{") brackets.push_back(op[0]);
        if (op == ")" || op == "]" || op == "}") {
          char open = op == ")" ? '(' : op == "]" ? '[' : '{';
          if (brackets.empty() || brackets.back() != open) {
            return Error("unexpected '" + std::string(op) + "'");
          }
          brackets.pop_back();
        }
        Emit(TokenKind::kOperator, std::string(op));
        pos_ += op.size();
      }
    }
  }

  // Integers as jinja2 reads them (digits with single underscores between); floats are refused.
  Status LexNumber() {
    std::string digits;
    size_t end = pos_;
    while (end < src_.size() && (IsDigit(src_[end]) || src_[end] == '_')) {
      if (src_[end] == '_' && (end + 1 >= src_.size() || !IsDigit(src_[end + 1]))) break;
      if (src_[end] != '_') digits += src_[end];
      ++end;
    }
    bool fraction = end + 1 < src_.size() && src_[end] == '.' && IsDigit(src_[end + 1]);
    size_t e = end + (end + 1 < src_.size() && (src_[end + 1] == '+' || src_[end + 1] == '-'));
    bool exponent = end < src_.size() && (src_[end] == 'e' || src_[end] == 'E') &&
                    e + 1 < src_.size() && IsDigit(src_[e + 1]);
    if ((fraction && (pos_ == 0 || src_[pos_ - 1] != '.')) || exponent) {
      return Error("floating-point literals are not supported");
    }
    if (digits.size() > 18) return Error("integer literal " + digits + " is too large");
    Emit(TokenKind::kInteger, digits, std::stoll(digits));
    pos_ = end;
    return Status::Ok();
  }

  // A quoted string with Python's escapes (jinja2 decodes literals with "unicode-escape").
  Status LexString(char quote) {
    std::string value;
    size_t i = pos_ + 1;
    while (true) {
      if (i >= src_.size()) return Error("unterminated string literal");
      char c = src_[i];
      if (c == quote) break;
      if (c != '\\') {
        value += c;
        ++i;
        continue;
      }
      if (i + 1 >= src_.size()) return Error("unterminated string literal");
      char e = src_[i + 1];
      i += 2;
      switch (e) {
        case '\n':
          break;  // a backslash-newline continues the line
        case '\\':
          value += '\\';
          break;
        case '\'':
          value += '\'';
          break;
        case '"':
          value += '"';
          break;
        case 'a':
          value += '\a';
          break;
        case 'b':
          value += '\b';
          break;
        case 'f':
          value += '\f';
          break;
        case 'n':
          value += '\n';
          break;
        case 'r':
          value += '\r';
          break;
        case 't':
          value += '\t';
          break;
        case 'v':
          value += '\v';
          break;
        case 'x':
        case 'u':
        case 'U': {
          size_t width = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          uint32_t cp = 0;
          for (size_t k = 0; k < width; ++k) {
            int h = i + k < src_.size() ? HexValue(src_[i + k]) : -1;
            if (h < 0) return Error(std::string("truncated \\") + e + " escape in a string");
            cp = cp * 16 + static_cast<uint32_t>(h);
          }
          if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return Error("string escape names an invalid code point");
          }
          AppendUtf8(cp, &value);
          i += width;
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            uint32_t cp = static_cast<uint32_t>(e - '0');
            for (int k = 0; k < 2 && i < src_.size() && src_[i] >= '0' && src_[i] <= '7'; ++k) {
              cp = cp * 8 + static_cast<uint32_t>(src_[i++] - '0');
            }
            AppendUtf8(cp, &value);
          } else if (static_cast<unsigned char>(e) >= 0x80 || e == 'N') {
            return Error(std::string("unsupported escape \\") + e + " in a string");
          } else {
            value += '\\';  // Python keeps unknown escapes as written
            value += e;
          }
      }
    }
    Emit(TokenKind::kString, std::move(value));
    pos_ = i + 1;
    return Status::Ok();
  }

  std::string src_;
  size_t pos_ = 0;
  int line_ = 1;
  std::vector<Token> tokens_;
};

}  // namespace

size_t PyWhitespaceAt(std::string_view text, size_t pos) {
  if (pos >= text.size()) return 0;
  auto b = [&](size_t k) { return static_cast<unsigned char>(text[pos + k]); };
  unsigned char c = b(0);
  if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) return 1;
  if (c == 0xC2 && pos + 1 < text.size() && (b(1) == 0x85 || b(1) == 0xA0)) return 2;
  if (pos + 2 >= text.size()) return 0;
  if (c == 0xE1 && b(1) == 0x9A && b(2) == 0x80) return 3;  // U+1680
  if (c == 0xE2 && b(1) == 0x80 && (b(2) <= 0x8A || b(2) == 0xA8 || b(2) == 0xA9 || b(2) == 0xAF)) {
    return b(2) >= 0x80 ? 3 : 0;  // U+2000-U+200A, U+2028, U+2029, U+202F
  }
  if (c == 0xE2 && b(1) == 0x81 && b(2) == 0x9F) return 3;  // U+205F
  if (c == 0xE3 && b(1) == 0x80 && b(2) == 0x80) return 3;  // U+3000
  return 0;
}

size_t PyLstripLength(std::string_view text) {
  size_t pos = 0;
  while (size_t n = PyWhitespaceAt(text, pos)) pos += n;
  return text.size() - pos;
}

size_t PyRstripLength(std::string_view text) {
  // Whitespace characters are 1 to 3 bytes; test each possible start of the last character.
  size_t end = text.size();
  while (end > 0) {
    size_t found = 0;
    for (size_t len = 1; len <= 3 && len <= end; ++len) {
      if (PyWhitespaceAt(text.substr(0, end), end - len) == len) found = len;
    }
    if (!found) break;
    end -= found;
  }
  return end;
}

StatusOr<std::vector<Token>> Lex(std::string_view source) { return Lexer(source).Run(); }

}  // namespace kubemoe::router::jinja

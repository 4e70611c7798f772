// The patterns of `Split` pre-tokenizers (internal to model/): a PCRE2 regex set up to match like
// the Oniguruma engine of the Python `tokenizers` package, or a literal string.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

struct pcre2_real_code_8;

namespace kubemoe::tokenizer_internal {

// A piece of a searched text: [begin, end) bytes, and whether the pattern matched it.
struct Span {
  size_t begin = 0;
  size_t end = 0;
  bool is_match = false;
};

class SplitPattern {
 public:
  // Compiles `pattern` with Unicode classes (\p{L}, \s as Unicode), ^ and $ at line boundaries
  // (Oniguruma's Ruby syntax) and JIT where available. Errors name `field` and the PCRE2 offset.
  static StatusOr<SplitPattern> Regex(std::string_view pattern, std::string_view field);
  // Matches `literal` exactly; an empty literal never matches.
  static SplitPattern Literal(std::string literal);

  // Replaces `out` by spans that cover `text` in order: matches (leftmost, non-overlapping; an
  // empty match is kept once per position) and the text between them. Invalid UTF-8 in `text`
  // never matches a character class. A regex failure (e.g. resource limits) leaves the rest of
  // the text as one non-matching span. Thread-safe.
  void FindMatches(std::string_view text, std::vector<Span>* out) const;

 private:
  SplitPattern() = default;
  std::shared_ptr<pcre2_real_code_8> code_;  // null for a literal
  std::string literal_;
};

// True when the first character of `text` is a word character (Unicode \w: Alphabetic, Mark,
// Decimal_Number, Connector_Punctuation, Join_Control), as single_word added tokens require.
bool StartsWithWordChar(std::string_view text);
// True when the last character of `text` is a word character.
bool EndsWithWordChar(std::string_view text);

}  // namespace kubemoe::tokenizer_internal

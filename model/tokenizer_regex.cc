#include "model/tokenizer_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "model/tokenizer_utf8.h"

namespace kubemoe::tokenizer_internal {
namespace {

struct MatchDataDeleter {
  void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
};

// One ovector pair is all FindMatches reads, so one match block serves every pattern; one per
// thread keeps concurrent Encode calls apart without an allocation per search.
pcre2_match_data* ThreadMatchData() {
  thread_local std::unique_ptr<pcre2_match_data, MatchDataDeleter> data(
      pcre2_match_data_create(1, nullptr));
  return data.get();
}

std::string Pcre2Error(int code) {
  PCRE2_UCHAR buffer[256];
  if (pcre2_get_error_message(code, buffer, sizeof(buffer)) < 0) return "unknown PCRE2 error";
  return reinterpret_cast<const char*>(buffer);
}

// Searches from `start`; returns false when there is no match (or the engine gave up).
bool Search(const pcre2_code* code, std::string_view text, size_t start, size_t* begin,
            size_t* end) {
  pcre2_match_data* data = ThreadMatchData();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  int rc = pcre2_match(code, subject, text.size(), start, 0, data, nullptr);
  if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
    // The interpreter keeps its backtracking state on the heap and copes with deeper searches.
    rc = pcre2_match(code, subject, text.size(), start, PCRE2_NO_JIT, data, nullptr);
  }
  if (rc < 0) return false;
  const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data);
  *begin = ovector[0];
  *end = ovector[1];
  return *begin <= *end && *end <= text.size();  // \K could invert them; treat that as no match
}

// Anchored test of the first character; EndsWithWordChar passes just the last character, so
// neither scans the whole text.
bool FirstIsWordChar(std::string_view text) {
  static const pcre2_code* code = [] {
    int error = 0;
    PCRE2_SIZE offset = 0;
    // The Python package tests single_word boundaries with Rust regex's Unicode \w.
    return pcre2_compile(
        reinterpret_cast<PCRE2_SPTR>("^[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}]"),
        PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error, &offset,
        nullptr);
  }();
  if (code == nullptr || text.empty()) return false;
  size_t begin = 0, end = 0;
  return Search(code, text, 0, &begin, &end);
}

// Oniguruma (and so the Python package) and PCRE2 disagree on a few escapes: PCRE2's \s also
// matches U+180E, its \w lacks marks and connector punctuation, and Oniguruma's \h is a hex digit.
// These rewrite them to explicit classes with Oniguruma's meaning; inside [...] the bare ranges
// are used. (\W inside a class has no such spelling and keeps PCRE2's meaning.)
constexpr std::string_view kSpaceRanges =
    "\\t-\\r\\x20\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}"
    "\\x{205F}\\x{3000}";
constexpr std::string_view kNonSpaceRanges =
    "\\x{0}-\\x{8}\\x{E}-\\x{1F}\\x{21}-\\x{84}\\x{86}-\\x{9F}\\x{A1}-\\x{167F}"
    "\\x{1681}-\\x{1FFF}\\x{200B}-\\x{2027}\\x{202A}-\\x{202E}\\x{2030}-\\x{205E}"
    "\\x{2060}-\\x{2FFF}\\x{3001}-\\x{10FFFF}";
constexpr std::string_view kWordRanges = "\\p{L}\\p{M}\\p{Nd}\\p{Pc}";
constexpr std::string_view kHexRanges = "0-9A-Fa-f";
constexpr std::string_view kNonHexRanges = "\\x{0}-/:-@G-`g-\\x{10FFFF}";

std::string TranslateOniguruma(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 64);
  int class_depth = 0;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[++i];
      if (e == 'Q') {  // \Q...\E quotes everything up to \E
        const size_t stop = pattern.find("\\E", i + 1);
        const size_t end = stop == std::string_view::npos ? pattern.size() : stop + 2;
        out.append(pattern.substr(i - 1, end - (i - 1)));
        i = end - 1;
        continue;
      }
      std::string_view ranges;
      bool negate = false;
      const bool in_class = class_depth > 0;
      switch (e) {
        case 's':
          ranges = kSpaceRanges;
          break;
        case 'S':
          ranges = in_class ? kNonSpaceRanges : kSpaceRanges;
          negate = !in_class;
          break;
        case 'w':
          ranges = kWordRanges;
          break;
        case 'W':
          if (!in_class) ranges = kWordRanges;
          negate = true;
          break;
        case 'h':
          ranges = kHexRanges;
          break;
        case 'H':
          ranges = in_class ? kNonHexRanges : kHexRanges;
          negate = !in_class;
          break;
        default:
          break;
      }
      if (ranges.empty()) {
        out.push_back(c);
        out.push_back(e);
      } else if (in_class) {
        out.append(ranges);
      } else {
        out.append(negate ? "[^" : "[");
        out.append(ranges);
        out.push_back(']');
      }
      continue;
    }
    out.push_back(c);
    if (c == '[') {
      ++class_depth;
      // A ']' right after '[' or '[^' is a literal member, not the end of the class.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out.push_back(pattern[++i]);
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out.push_back(pattern[++i]);
    } else if (c == ']' && class_depth > 0) {
      --class_depth;
    }
  }
  return out;
}

}  // namespace

StatusOr<SplitPattern> SplitPattern::Regex(std::string_view pattern, std::string_view field) {
  pcre2_compile_context* context = pcre2_compile_context_create(nullptr);
  pcre2_set_newline(context, PCRE2_NEWLINE_LF);
  pcre2_set_bsr(context, PCRE2_BSR_UNICODE);
  int error = 0;
  PCRE2_SIZE offset = 0;
  // MULTILINE + ALT_CIRCUMFLEX: Oniguruma's ^ and $ are line anchors. MATCH_INVALID_UTF: input
  // with invalid UTF-8 is searched safely (invalid bytes match nothing).
  const std::string translated = TranslateOniguruma(pattern);
  pcre2_code* code = pcre2_compile(
      reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
      PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_MULTILINE | PCRE2_ALT_CIRCUMFLEX,
      &error, &offset, context);
  pcre2_compile_context_free(context);
  if (code == nullptr) {
    return InvalidArgument(std::string(field) + ": regex does not compile at offset " +
                           std::to_string(offset) + ": " + Pcre2Error(error));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // optional: the interpreter is the fallback
  SplitPattern result;
  result.code_.reset(code, pcre2_code_free);
  return result;
}

SplitPattern SplitPattern::Literal(std::string literal) {
  SplitPattern result;
  result.literal_ = std::move(literal);
  return result;
}

void SplitPattern::FindMatches(std::string_view text, std::vector<Span>* out) const {
  out->clear();
  size_t previous = 0;
  const auto add_match = [&](size_t begin, size_t end) {
    if (previous != begin) out->push_back({previous, begin, false});
    out->push_back({begin, end, true});
    previous = end;
  };
  if (code_ == nullptr) {
    if (!literal_.empty()) {
      for (size_t at = text.find(literal_); at != std::string_view::npos;
           at = text.find(literal_, at + literal_.size())) {
        add_match(at, at + literal_.size());
      }
    }
  } else {
    // Like Oniguruma's find_iter: an empty match right where the previous match ended is skipped
    // by moving on one character.
    size_t search_from = 0;
    bool have_last_end = false;
    size_t last_end = 0;
    while (search_from <= text.size()) {
      size_t begin = 0, end = 0;
      if (!Search(code_.get(), text, search_from, &begin, &end)) break;
      if (begin == end && have_last_end && last_end == end) {
        search_from += search_from < text.size() ? DecodeUtf8At(text, search_from).length : 1;
        continue;
      }
      search_from = end;
      have_last_end = true;
      last_end = end;
      if (begin < previous) break;  // cannot happen with forward searches; never emit overlaps
      add_match(begin, end);
    }
  }
  if (previous != text.size()) out->push_back({previous, text.size(), false});
}

bool StartsWithWordChar(std::string_view text) {
  if (text.empty()) return false;
  return FirstIsWordChar(text.substr(0, DecodeUtf8At(text, 0).length));
}

bool EndsWithWordChar(std::string_view text) {
  for (size_t back = 1; back <= 4 && back <= text.size(); ++back) {
    const size_t pos = text.size() - back;
    const Utf8Step step = DecodeUtf8At(text, pos);
    if (step.valid && pos + step.length == text.size()) return FirstIsWordChar(text.substr(pos));
  }
  return false;
}

}  // namespace kubemoe::tokenizer_internal

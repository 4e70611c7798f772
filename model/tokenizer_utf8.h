// UTF-8 and GPT-2 byte-level helpers for the tokenizer (internal to model/).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kubemoe::tokenizer_internal {

// One step of UTF-8 decoding at a position.
struct Utf8Step {
  char32_t code_point = 0;  // valid only when `valid`
  size_t length = 1;        // bytes consumed; for invalid input the maximal invalid subpart (>= 1)
  bool valid = false;
  bool truncated = false;  // invalid only because the input ended inside a well-formed prefix
};

// Decodes the character at `pos` (REQUIRES: pos < text.size()) following Unicode's
// "maximal subpart" rule, the same rule Python's errors="replace" and Rust's from_utf8_lossy use.
Utf8Step DecodeUtf8At(std::string_view text, size_t pos);

// `text` with every maximal invalid subsequence replaced by U+FFFD.
std::string RepairUtf8(std::string_view text);

// Appends the UTF-8 encoding of `cp` to `out`.
void AppendUtf8(char32_t cp, std::string* out);

// Unicode White_Space (what Rust's char::is_whitespace tests).
bool IsUnicodeWhiteSpace(char32_t cp);

// GPT-2's byte-level alphabet: each byte maps to one printable code point, UTF-8 encoded.
const std::string& ByteLevelChar(uint8_t byte);
// The byte a byte-level code point stands for, if `cp` is one of the 256.
std::optional<uint8_t> ByteLevelByte(char32_t cp);

}  // namespace kubemoe::tokenizer_internal

// Sampled tokens -> response text, incrementally, for streamed and whole responses alike.
//
// Each token's raw bytes are appended; bytes are released only when
//   - they do not end inside a UTF-8 character that the next token may complete (so a character
//     split across tokens is never sent in halves), and
//   - they cannot be the beginning of a stop string (so a stop string split across tokens is
//     never partly sent).
// When a stop string appears, the text before it is released, the stop string and everything
// after it are dropped, and stopped() turns true (the request then finishes with "stop").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/tokenizer.h"

namespace kubemoe::router {

class TextAssembler {
 public:
  // `tokenizer` must outlive this object. `stop` strings must be non-empty.
  TextAssembler(const Tokenizer* tokenizer, std::vector<std::string> stop,
                bool skip_special_tokens);

  // Adds one sampled token; returns the text it releases (often empty). After stopped(), adds
  // nothing.
  std::string Add(int32_t token);
  // Adds raw bytes (what Add does with a token's bytes); exposed for tests.
  std::string AddBytes(std::string_view bytes);
  // The end of generation: releases what was held back (an incomplete UTF-8 tail included; the
  // JSON encoder replaces invalid bytes with U+FFFD). Empty after a stop string.
  std::string Finish();

  bool stopped() const { return stopped_; }
  // Everything released so far.
  const std::string& text() const { return text_; }

 private:
  // Length of the longest suffix of pending_ that is a proper prefix of a stop string.
  size_t StopPrefixHeld() const;
  std::string Release(size_t n);

  const Tokenizer* tokenizer_;
  std::vector<std::string> stop_;
  bool skip_special_tokens_;
  std::string pending_;  // bytes not yet released
  std::string text_;
  bool stopped_ = false;
};

}  // namespace kubemoe::router

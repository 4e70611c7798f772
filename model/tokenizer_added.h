// Added tokens (internal to model/): finding them in text before pre-tokenization.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kubemoe::tokenizer_internal {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;
  bool lstrip = false;       // swallow the whitespace before it
  bool rstrip = false;       // swallow the whitespace after it
  bool single_word = false;  // match only when no letter or digit touches it
  bool normalized = true;    // matched after normalization (second pass) instead of on raw text
};

// A piece of text: either an added token (token >= 0, an index into the token list) or plain text.
struct Segment {
  size_t begin = 0;
  size_t end = 0;
  int32_t token = -1;
};

// Leftmost-longest matching of a set of added tokens, like the Python package's Aho-Corasick pass.
class AddedTokenMatcher {
 public:
  // Matches the tokens of `tokens` whose `normalized` flag equals `normalized`. `tokens` must
  // outlive the matcher.
  AddedTokenMatcher(const std::vector<AddedToken>* tokens, bool normalized);

  // Replaces `out` by segments covering `text` in order. A match that single_word rejects stays
  // plain text and is not searched again for shorter tokens.
  void Split(std::string_view text, std::vector<Segment>* out) const;

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> children;  // sorted by byte
    int32_t token = -1;
  };
  int32_t Child(int32_t node, uint8_t byte) const;

  const std::vector<AddedToken>* tokens_;
  std::vector<Node> nodes_;
};

}  // namespace kubemoe::tokenizer_internal

#include "model/tokenizer_added.h"

#include <algorithm>

#include "model/tokenizer_regex.h"
#include "model/tokenizer_utf8.h"

namespace kubemoe::tokenizer_internal {
namespace {

// Start of the whitespace run that ends `text` (text.size() when there is none).
size_t TrailingWhiteSpaceStart(std::string_view text) {
  size_t start = text.size();
  while (start > 0) {
    size_t pos = start - 1;
    while (pos > 0 && start - pos < 4 && (static_cast<uint8_t>(text[pos]) & 0xC0) == 0x80) --pos;
    const Utf8Step step = DecodeUtf8At(text, pos);
    if (!step.valid || pos + step.length != start || !IsUnicodeWhiteSpace(step.code_point)) break;
    start = pos;
  }
  return start;
}

// Length of the whitespace run that starts `text`.
size_t LeadingWhiteSpaceLength(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    const Utf8Step step = DecodeUtf8At(text, pos);
    if (!step.valid || !IsUnicodeWhiteSpace(step.code_point)) break;
    pos += step.length;
  }
  return pos;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(const std::vector<AddedToken>* tokens, bool normalized)
    : tokens_(tokens), nodes_(1) {
  for (size_t t = 0; t < tokens->size(); ++t) {
    const AddedToken& token = (*tokens)[t];
    if (token.normalized != normalized || token.content.empty()) continue;
    int32_t node = 0;
    for (char c : token.content) {
      const uint8_t byte = static_cast<uint8_t>(c);
      int32_t child = Child(node, byte);
      if (child < 0) {
        child = static_cast<int32_t>(nodes_.size());
        nodes_.emplace_back();
        auto& children = nodes_[node].children;
        children.insert(
            std::lower_bound(children.begin(), children.end(), std::make_pair(byte, int32_t{0})),
            {byte, child});
      }
      node = child;
    }
    // Two entries with one content: the Python package keeps the later one.
    nodes_[node].token = static_cast<int32_t>(t);
  }
}

int32_t AddedTokenMatcher::Child(int32_t node, uint8_t byte) const {
  const auto& children = nodes_[node].children;
  auto it = std::lower_bound(children.begin(), children.end(), std::make_pair(byte, int32_t{0}));
  return it != children.end() && it->first == byte ? it->second : -1;
}

void AddedTokenMatcher::Split(std::string_view text, std::vector<Segment>* out) const {
  out->clear();
  size_t emitted = 0;  // text before this is in `out`
  size_t pos = 0;
  while (pos < text.size()) {
    // Longest token starting at pos.
    int32_t best = -1;
    size_t best_end = 0;
    int32_t node = 0;
    for (size_t i = pos; i < text.size(); ++i) {
      node = Child(node, static_cast<uint8_t>(text[i]));
      if (node < 0) break;
      if (nodes_[node].token >= 0) {
        best = nodes_[node].token;
        best_end = i + 1;
      }
    }
    if (best < 0) {
      ++pos;
      continue;
    }
    const AddedToken& token = (*tokens_)[best];
    size_t start = pos;
    size_t stop = best_end;
    pos = best_end;  // the search resumes after this match even when it is rejected
    if (token.single_word &&
        (EndsWithWordChar(text.substr(0, start)) || StartsWithWordChar(text.substr(stop)))) {
      continue;
    }
    if (token.lstrip) start = std::max(TrailingWhiteSpaceStart(text.substr(0, start)), emitted);
    if (token.rstrip) stop += LeadingWhiteSpaceLength(text.substr(stop));
    if (emitted < start) out->push_back({emitted, start, -1});
    out->push_back({start, stop, best});
    emitted = stop;
    pos = std::max(pos, stop);
  }
  if (emitted < text.size()) out->push_back({emitted, text.size(), -1});
}

}  // namespace kubemoe::tokenizer_internal

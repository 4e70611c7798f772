#include "router/stream_text.h"

#include <algorithm>

namespace kubemoe::router {

TextAssembler::TextAssembler(const Tokenizer* tokenizer, std::vector<std::string> stop,
                             bool skip_special_tokens)
    : tokenizer_(tokenizer), stop_(std::move(stop)), skip_special_tokens_(skip_special_tokens) {}

std::string TextAssembler::Add(int32_t token) {
  if (stopped_) return "";
  if (skip_special_tokens_ && tokenizer_->IsSpecial(token)) return "";
  return AddBytes(tokenizer_->TokenBytes(token));
}

std::string TextAssembler::AddBytes(std::string_view bytes) {
  if (stopped_) return "";
  // A stop string can only start in pending_: text that could begin one is never released.
  const size_t searched_from = pending_.size();
  pending_.append(bytes);
  size_t first = std::string::npos;
  for (const auto& s : stop_) {
    size_t from = searched_from >= s.size() ? searched_from - s.size() + 1 : 0;
    size_t at = pending_.find(s, from);
    first = std::min(first, at);
  }
  if (first != std::string::npos) {
    stopped_ = true;
    std::string out = Release(first);
    pending_.clear();
    return out;
  }
  size_t releasable = pending_.size() - StopPrefixHeld();
  return Release(CompleteUtf8Prefix(std::string_view(pending_).substr(0, releasable)));
}

std::string TextAssembler::Finish() {
  if (stopped_) return "";
  return Release(pending_.size());
}

size_t TextAssembler::StopPrefixHeld() const {
  size_t held = 0;
  for (const auto& s : stop_) {
    for (size_t j = std::min(s.size() - 1, pending_.size()); j > held; --j) {
      if (pending_.compare(pending_.size() - j, j, s, 0, j) == 0) {
        held = j;
        break;
      }
    }
  }
  return held;
}

std::string TextAssembler::Release(size_t n) {
  std::string out = pending_.substr(0, n);
  pending_.erase(0, n);
  text_ += out;
  return out;
}

}  // namespace kubemoe::router

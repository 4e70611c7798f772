#include "model/tokenizer_pretokenizer.h"

#include <algorithm>
#include <utility>

namespace kubemoe::tokenizer_internal {
namespace {

// GPT-2's word regex, which ByteLevel{use_regex: true} applies.
constexpr std::string_view kGpt2Regex =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

struct Range {
  size_t begin;
  size_t end;
  bool removed;
};

// Turns the spans of one piece into the ranges that survive, following the behavior. Adjacent
// matches stay separate pieces except where a behavior says otherwise.
void ApplyBehavior(const std::vector<Span>& spans, SplitBehavior behavior, bool invert,
                   std::vector<Range>* out) {
  out->clear();
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const Span& s : spans) out->push_back({s.begin, s.end, false});
      break;
    case SplitBehavior::kRemoved:
      for (const Span& s : spans) out->push_back({s.begin, s.end, s.is_match != invert});
      break;
    case SplitBehavior::kContiguous:
      for (const Span& s : spans) {
        const bool is_match = s.is_match != invert;
        if (is_match == previous_match && !out->empty()) {
          out->back().end = s.end;
        } else {
          out->push_back({s.begin, s.end, false});
        }
        previous_match = is_match;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const Span& s : spans) {
        const bool is_match = s.is_match != invert;
        if (is_match && !previous_match && !out->empty()) {
          out->back().end = s.end;
        } else {
          out->push_back({s.begin, s.end, false});
        }
        previous_match = is_match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      // The mirror image: walk backwards, glue a match to the piece after it.
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        const bool is_match = it->is_match != invert;
        if (is_match && !previous_match && !out->empty()) {
          out->back().begin = it->begin;
        } else {
          out->push_back({it->begin, it->end, false});
        }
        previous_match = is_match;
      }
      std::reverse(out->begin(), out->end());
      break;
  }
}

void ApplySplit(const SplitStep& step, std::vector<std::string>* pieces) {
  std::vector<std::string> next;
  next.reserve(pieces->size());
  std::vector<Span> spans;
  std::vector<Range> ranges;
  for (const std::string& piece : *pieces) {
    step.pattern.FindMatches(piece, &spans);
    ApplyBehavior(spans, step.behavior, step.invert, &ranges);
    for (const Range& r : ranges) {
      if (!r.removed && r.end > r.begin) next.emplace_back(piece, r.begin, r.end - r.begin);
    }
  }
  *pieces = std::move(next);
}

}  // namespace

std::optional<SplitBehavior> ParseSplitBehavior(std::string_view name) {
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  return std::nullopt;
}

Status PreTokenizer::SetByteLevel(bool add_prefix_space, bool use_regex) {
  byte_level_ = true;
  add_prefix_space_ = add_prefix_space;
  gpt2_split_.reset();
  if (use_regex) {
    StatusOr<SplitPattern> pattern = SplitPattern::Regex(kGpt2Regex, "ByteLevel GPT-2 regex");
    if (!pattern.ok()) return pattern.status();
    gpt2_split_ = SplitStep{std::move(pattern).value(), SplitBehavior::kIsolated, false};
  }
  return Status::Ok();
}

void PreTokenizer::Run(std::string_view text, std::vector<std::string>* words) const {
  if (text.empty()) return;
  std::vector<std::string> pieces{std::string(text)};
  for (const SplitStep& step : splits_) ApplySplit(step, &pieces);
  if (byte_level_) {
    if (add_prefix_space_) {
      // The Python package adds the space to every piece that lacks one, not only the first.
      for (std::string& piece : pieces) {
        if (piece.front() != ' ') piece.insert(piece.begin(), ' ');
      }
    }
    if (gpt2_split_) ApplySplit(*gpt2_split_, &pieces);
  }
  for (std::string& piece : pieces) {
    if (!piece.empty()) words->push_back(std::move(piece));
  }
}

}  // namespace kubemoe::tokenizer_internal

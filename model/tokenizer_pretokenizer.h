// Pre-tokenization (internal to model/): cuts text into the words BPE sees, as a `Sequence` of
// `Split` steps optionally ending with `ByteLevel`, with the Python `tokenizers` semantics.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "model/tokenizer_regex.h"

namespace kubemoe::tokenizer_internal {

// What a Split does with the pieces its pattern matches.
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Parses "Removed", "Isolated", ... (the JSON spelling); nullopt for anything else.
std::optional<SplitBehavior> ParseSplitBehavior(std::string_view name);

struct SplitStep {
  SplitPattern pattern;
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;  // when true the pieces between matches count as the matches
};

class PreTokenizer {
 public:
  void AddSplit(SplitStep step) { splits_.push_back(std::move(step)); }
  // Makes ByteLevel the last step. `use_regex` adds GPT-2's word regex.
  Status SetByteLevel(bool add_prefix_space, bool use_regex);
  // True when a ByteLevel step ends the sequence: words are then raw bytes for the byte alphabet.
  bool byte_level() const { return byte_level_; }

  // Appends the non-empty words of `text` (raw bytes; the byte-level mapping is the BPE model's
  // job) to `words`.
  void Run(std::string_view text, std::vector<std::string>* words) const;

 private:
  std::vector<SplitStep> splits_;
  bool byte_level_ = false;
  bool add_prefix_space_ = false;
  std::optional<SplitStep> gpt2_split_;
};

}  // namespace kubemoe::tokenizer_internal

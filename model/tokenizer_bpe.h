// The BPE model of tokenizer.json (internal to model/): vocab, ranked merges, the word cache.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"

namespace kubemoe::tokenizer_internal {

// Hash and equality that let a std::string-keyed map be searched with a string_view.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

struct BpeOptions {
  std::optional<std::string> unk_token;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
  // Words arrive as raw bytes and each byte starts as its GPT-2 byte-level character.
  bool byte_level = false;
};

class BpeModel {
 public:
  // Checks that every merge names vocab tokens and that their concatenation is in the vocab too.
  // `merges[i]` has rank i; a repeated pair keeps its last rank (as the Python package does).
  // Errors name `source` and the field (model.vocab, model.merges[i], model.unk_token).
  static StatusOr<BpeModel> Build(TokenMap vocab,
                                  const std::vector<std::pair<std::string, std::string>>& merges,
                                  BpeOptions options, std::string_view source);

  BpeModel(BpeModel&&) noexcept;
  BpeModel& operator=(BpeModel&&) noexcept;
  ~BpeModel();

  // Appends the ids of one pre-tokenized word. Characters that are not in the vocab become
  // byte-fallback tokens, else the unk token, else are dropped (the Python package's order).
  // Thread-safe.
  void EncodeWord(std::string_view word, std::vector<int32_t>* ids) const;

  const TokenMap& vocab() const { return vocab_; }

 private:
  struct Cache;
  BpeModel() = default;
  void EncodeUncached(std::string_view word, std::vector<int32_t>* ids) const;
  // Appends the starting symbols of the character `piece` (a byte-level char or a UTF-8 char).
  void AddSymbol(std::string_view piece, std::vector<int32_t>* symbols) const;

  TokenMap vocab_;
  // (left id << 32 | right id) -> (rank, merged id).
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;
  std::vector<int32_t> byte_ids_;  // byte-level: id of each byte's character, -1 when missing
  BpeOptions options_;
  std::optional<int32_t> unk_id_;
  std::unique_ptr<Cache> cache_;
};

}  // namespace kubemoe::tokenizer_internal

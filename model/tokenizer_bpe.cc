#include "model/tokenizer_bpe.h"

#include <cstdio>
#include <queue>

#include "common/mutex.h"
#include "model/tokenizer_utf8.h"

namespace kubemoe::tokenizer_internal {
namespace {

constexpr size_t kMaxCachedWordBytes = 256;
constexpr size_t kMaxCachedWords = 100000;

uint64_t PairKey(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

}  // namespace

struct BpeModel::Cache {
  Mutex mu;
  std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> words
      KUBEMOE_GUARDED_BY(mu);
};

BpeModel::BpeModel(BpeModel&&) noexcept = default;
BpeModel& BpeModel::operator=(BpeModel&&) noexcept = default;
BpeModel::~BpeModel() = default;

StatusOr<BpeModel> BpeModel::Build(TokenMap vocab,
                                   const std::vector<std::pair<std::string, std::string>>& merges,
                                   BpeOptions options, std::string_view source) {
  const std::string where(source);
  BpeModel model;
  model.vocab_ = std::move(vocab);
  model.options_ = std::move(options);
  model.cache_ = std::make_unique<Cache>();
  if (model.options_.unk_token) {
    auto it = model.vocab_.find(*model.options_.unk_token);
    if (it == model.vocab_.end()) {
      return InvalidArgument(where + ": model.unk_token '" + *model.options_.unk_token +
                             "' is not in model.vocab");
    }
    model.unk_id_ = it->second;
  }
  model.merges_.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const auto& [left, right] = merges[i];
    const std::string field = where + ": model.merges[" + std::to_string(i) + "]";
    auto l = model.vocab_.find(left);
    if (l == model.vocab_.end()) {
      return InvalidArgument(field + ": token '" + left + "' is not in model.vocab");
    }
    auto r = model.vocab_.find(right);
    if (r == model.vocab_.end()) {
      return InvalidArgument(field + ": token '" + right + "' is not in model.vocab");
    }
    auto merged = model.vocab_.find(left + right);
    if (merged == model.vocab_.end()) {
      return InvalidArgument(field + ": merged token '" + left + right + "' is not in model.vocab");
    }
    model.merges_[PairKey(l->second, r->second)] = {static_cast<int32_t>(i), merged->second};
  }
  if (model.options_.byte_level) {
    model.byte_ids_.assign(256, -1);
    for (int b = 0; b < 256; ++b) {
      auto it = model.vocab_.find(ByteLevelChar(static_cast<uint8_t>(b)));
      if (it != model.vocab_.end()) model.byte_ids_[b] = it->second;
    }
  }
  return model;
}

void BpeModel::EncodeWord(std::string_view word, std::vector<int32_t>* ids) const {
  if (word.size() > kMaxCachedWordBytes) {
    EncodeUncached(word, ids);
    return;
  }
  {
    MutexLock lock(&cache_->mu);
    auto it = cache_->words.find(word);
    if (it != cache_->words.end()) {
      ids->insert(ids->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> word_ids;
  EncodeUncached(word, &word_ids);
  ids->insert(ids->end(), word_ids.begin(), word_ids.end());
  MutexLock lock(&cache_->mu);
  if (cache_->words.size() >= kMaxCachedWords) cache_->words.clear();
  cache_->words.emplace(std::string(word), std::move(word_ids));
}

void BpeModel::AddSymbol(std::string_view piece, std::vector<int32_t>* symbols) const {
  if (auto it = vocab_.find(piece); it != vocab_.end()) {
    symbols->push_back(it->second);
    return;
  }
  if (options_.byte_fallback) {
    std::vector<int32_t> bytes;
    for (char c : piece) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", static_cast<unsigned>(static_cast<uint8_t>(c)));
      auto it = vocab_.find(std::string_view(name));
      if (it == vocab_.end()) break;
      bytes.push_back(it->second);
    }
    if (bytes.size() == piece.size()) {
      symbols->insert(symbols->end(), bytes.begin(), bytes.end());
      return;
    }
  }
  if (!unk_id_) return;  // no unk token: the Python package drops the character
  if (options_.fuse_unk && !symbols->empty() && symbols->back() == *unk_id_) return;
  symbols->push_back(*unk_id_);
}

void BpeModel::EncodeUncached(std::string_view word, std::vector<int32_t>* ids) const {
  std::string mapped;  // the word as the vocab spells it, needed for byte-level lookups
  if (options_.byte_level) {
    mapped.reserve(word.size() * 2);
    for (char c : word) mapped += ByteLevelChar(static_cast<uint8_t>(c));
  }
  const std::string_view spelled = options_.byte_level ? std::string_view(mapped) : word;
  if (options_.ignore_merges) {
    if (auto it = vocab_.find(spelled); it != vocab_.end()) {
      ids->push_back(it->second);
      return;
    }
  }

  std::vector<int32_t> symbols;
  symbols.reserve(word.size());
  if (options_.byte_level) {
    for (char c : word) {
      const int32_t id = byte_ids_[static_cast<uint8_t>(c)];
      if (id >= 0) {
        symbols.push_back(id);
      } else {
        AddSymbol(ByteLevelChar(static_cast<uint8_t>(c)), &symbols);
      }
    }
  } else {
    for (size_t pos = 0; pos < word.size();) {
      const size_t length = DecodeUtf8At(word, pos).length;
      AddSymbol(word.substr(pos, length), &symbols);
      pos += length;
    }
  }
  if (symbols.size() < 2) {
    ids->insert(ids->end(), symbols.begin(), symbols.end());
    return;
  }

  // Merge the lowest-ranked adjacent pair first, the leftmost on ties; stale queue entries are
  // recognised by re-checking the pair. O(n log n) for a word of n symbols.
  const int32_t n = static_cast<int32_t>(symbols.size());
  std::vector<int32_t> prev(n), next(n);
  std::vector<bool> alive(n, true);
  for (int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t merged_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  const auto consider = [&](int32_t left) {
    const int32_t right = next[left];
    if (right < 0) return;
    auto it = merges_.find(PairKey(symbols[left], symbols[right]));
    if (it != merges_.end()) queue.push({it->second.first, left, it->second.second});
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    if (!alive[top.pos] || next[top.pos] < 0) continue;
    const int32_t right = next[top.pos];
    auto it = merges_.find(PairKey(symbols[top.pos], symbols[right]));
    if (it == merges_.end() || it->second.second != top.merged_id) continue;
    symbols[top.pos] = top.merged_id;
    alive[right] = false;
    next[top.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = top.pos;
    if (prev[top.pos] >= 0) consider(prev[top.pos]);
    consider(top.pos);
  }
  for (int32_t i = 0; i >= 0; i = next[i]) ids->push_back(symbols[i]);
}

}  // namespace kubemoe::tokenizer_internal

#include "model/tokenizer.h"

#include <fstream>
#include <sstream>

#include "model/tokenizer_impl.h"
#include "model/tokenizer_utf8.h"

namespace kubemoe {

using tokenizer_internal::AddedToken;
using tokenizer_internal::Segment;

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

StatusOr<Tokenizer> Tokenizer::FromFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(path + ": cannot open tokenizer file");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return DataLoss(path + ": read error");
  return FromJson(text.str(), path);
}

void Tokenizer::Impl::BuildTables() {
  int32_t size = 0;
  for (const auto& [text, id] : bpe->vocab()) size = std::max(size, id + 1);
  for (const AddedToken& token : added) size = std::max(size, token.id + 1);
  token_text.assign(size, {});
  token_exists.assign(size, 0);
  token_special.assign(size, 0);
  for (const auto& [text, id] : bpe->vocab()) {
    token_text[id] = text;
    token_exists[id] = 1;
  }
  for (const AddedToken& token : added) {
    token_text[token.id] = token.content;
    token_exists[token.id] = 1;
    token_special[token.id] = token.special ? 1 : 0;
    added_ids[token.content] = token.id;
  }
  // The ByteLevel decoder turns a token whose characters are all byte-level characters into those
  // bytes, and keeps any other token (e.g. "<｜end▁of▁sentence｜>") as its own UTF-8.
  token_bytes.assign(size, {});
  for (int32_t id = 0; id < size; ++id) {
    const std::string& text = token_text[id];
    if (!byte_level_decoder) {
      token_bytes[id] = text;
      continue;
    }
    std::string bytes;
    bool all_byte_level = true;
    for (size_t pos = 0; pos < text.size() && all_byte_level;) {
      const tokenizer_internal::Utf8Step step = tokenizer_internal::DecodeUtf8At(text, pos);
      const auto byte =
          step.valid ? tokenizer_internal::ByteLevelByte(step.code_point) : std::nullopt;
      if (byte) {
        bytes.push_back(static_cast<char>(*byte));
      } else {
        all_byte_level = false;
      }
      pos += step.length;
    }
    token_bytes[id] = all_byte_level ? std::move(bytes) : text;
  }

  if (!template_prefix.empty() && token_special[template_prefix.front()]) {
    bos_id = template_prefix.front();
  }
  const auto find_special =
      [&](std::initializer_list<const char*> names) -> std::optional<int32_t> {
    for (const char* name : names) {
      auto it = added_ids.find(std::string_view(name));
      if (it != added_ids.end() && token_special[it->second]) return it->second;
    }
    return std::nullopt;
  };
  if (!bos_id) bos_id = find_special({"<｜begin▁of▁sentence｜>", "<s>", "<|begin_of_text|>"});
  eos_id = find_special(
      {"<｜end▁of▁sentence｜>", "</s>", "<|end_of_text|>", "<|endoftext|>", "<|eot_id|>"});
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool add_special_tokens) const {
  const Impl& impl = *impl_;
  std::vector<int32_t> ids;
  if (add_special_tokens) ids = impl.template_prefix;
  // Added tokens that match the raw text come out first, then those that match normalized text
  // (the normalizer is the identity), then the rest is pre-tokenized and run through BPE.
  std::vector<Segment> raw_segments, normalized_segments;
  std::vector<std::string> words;
  impl.raw_matcher->Split(text, &raw_segments);
  for (const Segment& raw : raw_segments) {
    if (raw.token >= 0) {
      ids.push_back(impl.added[raw.token].id);
      continue;
    }
    const std::string_view piece = text.substr(raw.begin, raw.end - raw.begin);
    impl.normalized_matcher->Split(piece, &normalized_segments);
    for (const Segment& segment : normalized_segments) {
      if (segment.token >= 0) {
        ids.push_back(impl.added[segment.token].id);
        continue;
      }
      words.clear();
      impl.pre_tokenizer.Run(piece.substr(segment.begin, segment.end - segment.begin), &words);
      for (const std::string& word : words) impl.bpe->EncodeWord(word, &ids);
    }
  }
  if (add_special_tokens) {
    ids.insert(ids.end(), impl.template_suffix.begin(), impl.template_suffix.end());
  }
  return ids;
}

std::string Tokenizer::DecodeBytes(const std::vector<int32_t>& ids,
                                   bool skip_special_tokens) const {
  const Impl& impl = *impl_;
  std::string out;
  bool first = true;
  for (int32_t id : ids) {
    if (id < 0 || id >= VocabSize() || !impl.token_exists[id]) continue;
    if (skip_special_tokens && impl.token_special[id]) continue;
    if (!impl.byte_level_decoder && !first) out.push_back(' ');
    out += impl.token_bytes[id];
    first = false;
  }
  return out;
}

std::string Tokenizer::Decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  return tokenizer_internal::RepairUtf8(DecodeBytes(ids, skip_special_tokens));
}

std::string Tokenizer::TokenBytes(int32_t id) const {
  if (id < 0 || id >= VocabSize() || !impl_->token_exists[id]) return {};
  return impl_->token_bytes[id];
}

int32_t Tokenizer::VocabSize() const { return static_cast<int32_t>(impl_->token_text.size()); }

std::optional<int32_t> Tokenizer::TokenId(std::string_view token) const {
  if (auto it = impl_->added_ids.find(token); it != impl_->added_ids.end()) return it->second;
  const auto& vocab = impl_->bpe->vocab();
  if (auto it = vocab.find(token); it != vocab.end()) return it->second;
  return std::nullopt;
}

std::optional<std::string> Tokenizer::TokenText(int32_t id) const {
  if (id < 0 || id >= VocabSize() || !impl_->token_exists[id]) return std::nullopt;
  return impl_->token_text[id];
}

bool Tokenizer::IsSpecial(int32_t id) const {
  return id >= 0 && id < VocabSize() && impl_->token_special[id];
}

std::optional<int32_t> Tokenizer::BosId() const { return impl_->bos_id; }
std::optional<int32_t> Tokenizer::EosId() const { return impl_->eos_id; }

size_t CompleteUtf8Prefix(std::string_view bytes) {
  // Only the last character can be incomplete, and a character has at most 4 bytes.
  const size_t from = bytes.size() > 3 ? bytes.size() - 3 : 0;
  for (size_t pos = from; pos < bytes.size(); ++pos) {
    const tokenizer_internal::Utf8Step step = tokenizer_internal::DecodeUtf8At(bytes, pos);
    if (step.truncated) return pos;
  }
  return bytes.size();
}

}  // namespace kubemoe

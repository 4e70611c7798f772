// The Hugging Face `tokenizer.json` byte-level BPE tokenizer, as DeepSeek-V2 ships it.
//
// Supported (anything else is refused at load time with an error naming the field):
//   model          BPE: vocab, merges ("a b" strings or [a, b] arrays), unk_token, fuse_unk,
//                  byte_fallback, ignore_merges; dropout must be null or 0,
//                  continuing_subword_prefix and end_of_word_suffix must be null or "".
//   added_tokens   id, content, special, lstrip, rstrip, single_word, normalized.
//   normalizer     null or an empty Sequence.
//   pre_tokenizer  null, Split{Regex|String pattern, any behavior, invert},
//   ByteLevel{add_prefix_space,
//                  use_regex (the GPT-2 regex)} or a Sequence of those with ByteLevel last.
//   decoder        ByteLevel or null.
//   post_processor null, ByteLevel, TemplateProcessing (single template) or a Sequence of those.
// Regexes run on PCRE2 configured to behave like the Oniguruma engine the Python package uses
// (Unicode classes, ^ and $ at line boundaries).
//
// The ids it produces for valid UTF-8 text equal those of the Python `tokenizers` package
// (tests/tokenizer_test.cc checks golden files, tests/py/tokenizer_python_test.py random text).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace kubemoe {

class Tokenizer {
 public:
  // Reads and parses a tokenizer.json file. Errors name the file and the offending field.
  static StatusOr<Tokenizer> FromFile(const std::string& path);
  // Parses tokenizer.json text; `source_name` (a path or "<embedded>") prefixes every error
  // message.
  static StatusOr<Tokenizer> FromJson(std::string_view text, std::string_view source_name);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Token ids for `text`. Added tokens (special or not) found in the text map to their own ids;
  // with `add_special_tokens` the post-processor's template (e.g. a leading BOS) is applied.
  // Invalid UTF-8 never fails: its bytes go through the byte-level alphabet unchanged, and
  // DecodeBytes(Encode(text, false)) == text for any byte string when the model is byte-level.
  // The ids then need not match any other implementation, which would reject such input.
  // Thread-safe (an internal word cache is guarded by a mutex).
  std::vector<int32_t> Encode(std::string_view text, bool add_special_tokens) const;

  // Text for `ids` as the Python package decodes it: byte-level tokens become their bytes, tokens
  // with characters outside the byte alphabet (e.g. special tokens) their own UTF-8, unknown ids
  // are skipped, and invalid UTF-8 in the result is replaced by U+FFFD (one per maximal invalid
  // subsequence). With `skip_special_tokens`, special added tokens are left out.
  std::string Decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const;
  // Like Decode but returns the raw bytes without UTF-8 repair.
  std::string DecodeBytes(const std::vector<int32_t>& ids, bool skip_special_tokens) const;
  // The raw bytes one token stands for (possibly part of a UTF-8 character); empty for an unknown
  // id. For streaming: append these and emit the CompleteUtf8Prefix of what has accumulated.
  std::string TokenBytes(int32_t id) const;

  // Number of rows an embedding table needs: 1 + the largest id of the vocab and added tokens.
  int32_t VocabSize() const;
  // Id of a token spelled as in the vocab (byte-level form, e.g. "Ġthe") or of an added token.
  std::optional<int32_t> TokenId(std::string_view token) const;
  // The vocab spelling of `id`, if the id exists.
  std::optional<std::string> TokenText(int32_t id) const;
  // True when `id` is an added token marked special.
  bool IsSpecial(int32_t id) const;
  // BOS: the special token the post-processor's template starts with, else a special token named
  // like a BOS (<｜begin▁of▁sentence｜>, <s>, <|begin_of_text|>). EOS likewise by name
  // (<｜end▁of▁sentence｜>, </s>, <|end_of_text|>, <|endoftext|>).
  std::optional<int32_t> BosId() const;
  std::optional<int32_t> EosId() const;

  // Opaque state, defined in model/tokenizer_impl.h for the tokenizer's own source files.
  struct Impl;

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Length of the longest prefix of `bytes` that does not end inside an incomplete UTF-8 sequence
// that more bytes could still complete. Invalid bytes count as complete (a decoder will replace
// them), so a streaming server holds back at most 3 bytes.
size_t CompleteUtf8Prefix(std::string_view bytes);

}  // namespace kubemoe

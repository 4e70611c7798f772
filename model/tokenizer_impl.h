// The state behind kubemoe::Tokenizer (internal to model/), shared by tokenizer.cc (encode and
// decode) and tokenizer_json.cc (loading).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/tokenizer.h"
#include "model/tokenizer_added.h"
#include "model/tokenizer_bpe.h"
#include "model/tokenizer_pretokenizer.h"

namespace kubemoe {

struct Tokenizer::Impl {
  std::string source;
  std::unique_ptr<tokenizer_internal::BpeModel> bpe;
  std::vector<tokenizer_internal::AddedToken> added;
  // Matchers point into `added`; Impl lives on the heap, so the address stays put.
  std::unique_ptr<tokenizer_internal::AddedTokenMatcher> raw_matcher;
  std::unique_ptr<tokenizer_internal::AddedTokenMatcher> normalized_matcher;
  tokenizer_internal::PreTokenizer pre_tokenizer;
  bool byte_level_decoder = false;  // false: the decoder is null and tokens are joined by spaces
  // The single-sequence template of the post-processor: ids before and after the text.
  std::vector<int32_t> template_prefix;
  std::vector<int32_t> template_suffix;

  // Per id (index): how Decode spells it, whether it exists and is special. Added tokens win over
  // vocab entries with the same id, as in the Python package.
  std::vector<std::string> token_text;
  std::vector<std::string> token_bytes;
  std::vector<uint8_t> token_exists;
  std::vector<uint8_t> token_special;
  tokenizer_internal::TokenMap added_ids;  // content -> id
  std::optional<int32_t> bos_id;
  std::optional<int32_t> eos_id;

  // Fills the per-id tables and BOS/EOS from bpe, added and the template. REQUIRES: bpe is set.
  void BuildTables();
};

}  // namespace kubemoe

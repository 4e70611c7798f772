// OpenAI's `logprobs` objects for one choice, built position by position from the token ids and
// PositionLogprobs the GenerationService delivers:
//   /v1/completions (legacy): {"tokens": [str], "token_logprobs": [float|null],
//                              "top_logprobs": [{str: float}|null], "text_offset": [int]}
//   /v1/chat/completions:     {"content": [{"token", "logprob", "bytes",
//                                           "top_logprobs": [{"token", "logprob", "bytes"}]}]}
//
// Token strings follow vLLM: a token's string is its decoded text, special tokens included.
// Byte-level BPE tokens can end inside a UTF-8 character; such bytes are carried to the next token
// of the sequence, so the token that completes the character shows it whole and the earlier pieces
// show "" (joined, the strings give the text). Bytes that can never form a character show as
// U+FFFD. Alternatives in top_logprobs are decoded in the same context as the token at their
// position. With vLLM's `return_tokens_as_token_ids` every token string is "token_id:<id>". Chat's
// `bytes` are the token's own raw bytes (possibly part of a character), so a client can rebuild the
// exact text as OpenAI intends. -inf (and NaN) are sent as -9999.0, as vLLM does, since JSON has no
// infinity.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "model/tokenizer.h"
#include "router/generation_service.h"
#include "router/openai_request.h"

namespace kubemoe::router {

// The string for a token whose raw bytes `bytes` follow `carry` (the incomplete character the
// sequence's previous tokens left): the complete characters of carry + bytes, invalid bytes
// replaced by U+FFFD. `rest`, when not null, receives the incomplete tail to carry further.
std::string TokenString(std::string_view carry, std::string_view bytes, std::string* rest);

class LogprobsBuilder {
 public:
  // `tokenizer` must outlive this object.
  LogprobsBuilder(const Tokenizer* tokenizer, OpenAIEndpoint endpoint, bool tokens_as_ids = false);

  // The token at the next position of the choice and its logprobs; null logprobs: none (the
  // first prompt token, echoed). Completions' top_logprobs hold the token itself and its
  // alternatives (up to N + 1 entries); where two of them decode to the same string the higher
  // logprob is kept. Chat's top_logprobs hold the alternatives only.
  void Add(int32_t token, const PositionLogprobs* logprobs);

  // True when positions were added since the last Take.
  bool pending() const { return pending_ > 0; }
  // The `logprobs` object for the positions added since the last Take (all of them for a whole
  // response, the new ones for a streamed chunk). Completions' text_offset counts Unicode code
  // points of the token strings from the choice's first token (vLLM's convention).
  nlohmann::json Take();

 private:
  nlohmann::json Reset() const;

  const Tokenizer* tokenizer_;
  const bool chat_;
  const bool tokens_as_ids_;
  std::string carry_;   // bytes of a character the tokens so far left incomplete
  int64_t offset_ = 0;  // text_offset of the next token
  int64_t pending_ = 0;
  nlohmann::json json_;
};

}  // namespace kubemoe::router

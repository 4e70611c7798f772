// Parsing and validation of OpenAI /v1/completions and /v1/chat/completions request bodies, with
// vLLM's behaviour where OpenAI's API leaves room: unknown fields are ignored, known fields of the
// wrong type or with invalid values are an error naming the field, and features we do not
// implement (n > 1, penalties, tools, ...) are accepted only at their neutral value, so a request
// is never answered as if an option had been honoured when it was not.
// No cpprestsdk here: the fuzz build links this (tests/fuzz/openai_request_fuzz.cc).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "router/generation_service.h"

namespace kubemoe::router {

inline constexpr size_t kMaxStopStrings = 16;
inline constexpr size_t kMaxStopBytes = 256;

enum class OpenAIEndpoint { kCompletions, kChatCompletions };

// An error the HTTP layer answers with `http_status` and the body
// {"error": {"message": ..., "type": ..., "param": ... | null, "code": ... | null}}.
struct ApiError {
  int http_status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // the offending request field; empty: null
  std::string code;   // a machine-readable code; empty: null
};

// The body's JSON: {"error": {...}} as OpenAI writes it.
nlohmann::json ErrorJson(const ApiError& error);

struct OpenAIRequest {
  OpenAIEndpoint endpoint = OpenAIEndpoint::kCompletions;
  std::string model;  // empty when the request names none (vLLM then uses the served model)

  // /v1/completions: `prompt` as text (a string or a list of one string) or as token ids (a list
  // of integers or a list of one such list). Batched prompts are refused.
  bool prompt_is_tokens = false;
  std::string prompt_text;
  std::vector<int32_t> prompt_tokens;

  // /v1/chat/completions: the messages as the chat template reads them, [{"role", "content"}]
  // with content flattened to a string (text parts joined with "\n", as vLLM does) and the
  // "developer" role read as "system"; a string "name" is kept.
  nlohmann::json messages;
  bool add_generation_prompt = true;  // vLLM's extension

  // Chat: max_completion_tokens, else max_tokens. >= 1; 0 only for completions with echo (the
  // prompt's logprobs without generating, as OpenAI's legacy API and vLLM allow).
  std::optional<int64_t> max_tokens;
  double temperature = 1.0;           // OpenAI's default
  double top_p = 1.0;
  int32_t top_k = 0;                    // vLLM's extension; -1 and 0 mean no limit
  std::optional<uint64_t> seed;         // a negative seed is taken modulo 2^64
  std::vector<std::string> stop;        // non-empty, unique, <= kMaxStopStrings of <= kMaxStopBytes
  std::vector<int32_t> stop_token_ids;  // vLLM's extension
  bool ignore_eos = false;              // vLLM's extension
  bool skip_special_tokens = true;      // vLLM's extension
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage

  // Logprobs, 0..kMaxTopLogprobs alternatives per token; unset: none. Completions: `logprobs` (an
  // integer or null). Chat: `top_logprobs` (default 0) when `logprobs` is true; `top_logprobs`
  // without `logprobs: true` is an error.
  std::optional<int32_t> logprobs;
  bool echo = false;  // completions only: the answer's text and logprobs start with the prompt's
  // vLLM's extension: logprobs name tokens "token_id:<id>" instead of by their text.
  bool return_tokens_as_token_ids = false;
};

// Parses `body` for `endpoint`. Returns false and fills `error` (status 400, `param` naming the
// field) when the body is not a JSON object or a field is invalid. Never throws.
bool ParseOpenAIRequest(std::string_view body, OpenAIEndpoint endpoint, OpenAIRequest* request,
                        ApiError* error);

}  // namespace kubemoe::router

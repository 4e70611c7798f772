// OpenAI response bodies and server-sent-event framing for completions and chat completions
// (the shapes OpenAI's API and vLLM produce, as the official `openai` client parses them).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "router/generation_service.h"
#include "router/openai_request.h"

namespace kubemoe::router {

// What every response and chunk of one request repeats.
struct ResponseMeta {
  OpenAIEndpoint endpoint = OpenAIEndpoint::kCompletions;
  std::string id;       // "cmpl-..." / "chatcmpl-..."
  int64_t created = 0;  // Unix seconds
  std::string model;
};

// "stop" or "length"; kCancelled (the stream ended the request itself) reads as "stop".
const char* FinishReasonName(FinishReason reason);

// JSON text with invalid UTF-8 bytes replaced by U+FFFD (token bytes need not be valid UTF-8).
std::string DumpJson(const nlohmann::json& value);

// The whole (non-streamed) response: "text_completion" with choices[0].text, or
// "chat.completion" with choices[0].message {"role": "assistant", "content"}; plus usage.
// `logprobs` becomes choices[0].logprobs (null: none asked for; router/openai_logprobs.h).
nlohmann::json FullResponse(const ResponseMeta& meta, const std::string& text,
                            const std::string& finish_reason, const Usage& usage,
                            const nlohmann::json& logprobs = nullptr);

// One streamed chunk: "text_completion" with choices[0].text, or "chat.completion.chunk" with
// choices[0].delta. `role_delta` puts {"role": "assistant"} in the delta (chat's first chunk);
// `finish_reason` empty means null (the request goes on). `logprobs`: those of the chunk's
// tokens, or null (chat's delta then carries "content" even when the text is empty).
nlohmann::json StreamChunk(const ResponseMeta& meta, const std::string& text, bool role_delta,
                           const std::string& finish_reason,
                           const nlohmann::json& logprobs = nullptr);

// The last chunk when stream_options.include_usage is set: "choices": [] and the usage.
nlohmann::json UsageChunk(const ResponseMeta& meta, const Usage& usage);

nlohmann::json UsageJson(const Usage& usage);

// The HTTP status and OpenAI error for a Status from the GenerationService: InvalidArgument 400,
// NotFound 404, OutOfRange 413 ("context_length_exceeded"), ResourceExhausted 429,
// Unavailable 503, DeadlineExceeded 504, anything else 500.
ApiError ApiErrorFromStatus(const Status& status);

// "data: <json>\n\n".
std::string SseEvent(const nlohmann::json& value);
inline constexpr char kSseDone[] = "data: [DONE]\n\n";

}  // namespace kubemoe::router

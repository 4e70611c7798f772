#include "router/openai_response.h"

namespace kubemoe::router {

using nlohmann::json;

namespace {

bool IsChat(const ResponseMeta& meta) { return meta.endpoint == OpenAIEndpoint::kChatCompletions; }

json Header(const ResponseMeta& meta, const char* object) {
  return {{"id", meta.id}, {"object", object}, {"created", meta.created}, {"model", meta.model}};
}

json NullOr(const std::string& s) { return s.empty() ? json(nullptr) : json(s); }

ApiError MakeError(int status, std::string type, std::string message, std::string code = "") {
  ApiError e;
  e.http_status = status;
  e.type = std::move(type);
  e.message = std::move(message);
  e.code = std::move(code);
  return e;
}

}  // namespace

const char* FinishReasonName(FinishReason reason) {
  return reason == FinishReason::kLength ? "length" : "stop";
}

std::string DumpJson(const json& value) {
  return value.dump(-1, ' ', /*ensure_ascii=*/false, json::error_handler_t::replace);
}

json UsageJson(const Usage& usage) {
  return {{"prompt_tokens", usage.prompt_tokens},
          {"completion_tokens", usage.completion_tokens},
          {"total_tokens", usage.prompt_tokens + usage.completion_tokens}};
}

json FullResponse(const ResponseMeta& meta, const std::string& text,
                  const std::string& finish_reason, const Usage& usage, const json& logprobs) {
  json choice = {{"index", 0}, {"logprobs", logprobs}, {"finish_reason", NullOr(finish_reason)}};
  if (IsChat(meta)) {
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  } else {
    choice["text"] = text;
  }
  json out = Header(meta, IsChat(meta) ? "chat.completion" : "text_completion");
  out["choices"] = json::array({std::move(choice)});
  out["usage"] = UsageJson(usage);
  return out;
}

json StreamChunk(const ResponseMeta& meta, const std::string& text, bool role_delta,
                 const std::string& finish_reason, const json& logprobs) {
  json choice = {{"index", 0}, {"logprobs", logprobs}, {"finish_reason", NullOr(finish_reason)}};
  if (IsChat(meta)) {
    json delta = json::object();
    if (role_delta) delta["role"] = "assistant";
    if (role_delta || !text.empty() || !logprobs.is_null()) delta["content"] = text;
    choice["delta"] = std::move(delta);
  } else {
    choice["text"] = text;
  }
  json out = Header(meta, IsChat(meta) ? "chat.completion.chunk" : "text_completion");
  out["choices"] = json::array({std::move(choice)});
  return out;
}

json UsageChunk(const ResponseMeta& meta, const Usage& usage) {
  json out = Header(meta, IsChat(meta) ? "chat.completion.chunk" : "text_completion");
  out["choices"] = json::array();
  out["usage"] = UsageJson(usage);
  return out;
}

ApiError ApiErrorFromStatus(const Status& status) {
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
      return MakeError(400, "invalid_request_error", status.message());
    case StatusCode::kOutOfRange:
      return MakeError(413, "invalid_request_error", status.message(), "context_length_exceeded");
    case StatusCode::kNotFound:
      return MakeError(404, "invalid_request_error", status.message());
    case StatusCode::kResourceExhausted:
      return MakeError(429, "rate_limit_error", status.message(), "queue_full");
    case StatusCode::kUnavailable:
      return MakeError(503, "service_unavailable_error", status.message(), "service_unavailable");
    case StatusCode::kDeadlineExceeded:
      return MakeError(504, "timeout_error", status.message(), "deadline_exceeded");
    default:
      return MakeError(500, "server_error", status.ToString());
  }
}

std::string SseEvent(const json& value) { return "data: " + DumpJson(value) + "\n\n"; }

}  // namespace kubemoe::router

#include "operator/k8s/api_error.h"

#include <nlohmann/json.hpp>

namespace kubemoe::k8s {
namespace {

ApiReason ReasonFromCode(int code) {
  switch (code) {
    case 400: return ApiReason::kBadRequest;
    case 401: return ApiReason::kUnauthorized;
    case 403: return ApiReason::kForbidden;
    case 404: return ApiReason::kNotFound;
    case 405: return ApiReason::kMethodNotAllowed;
    case 409: return ApiReason::kConflict;
    case 410: return ApiReason::kGone;
    case 415: return ApiReason::kUnsupportedMediaType;
    case 422: return ApiReason::kInvalid;
    case 429: return ApiReason::kTooManyRequests;
    case 503: return ApiReason::kServiceUnavailable;
    case 504: return ApiReason::kTimeout;
    default: break;
  }
  if (code >= 500 && code < 600) return ApiReason::kServerError;
  return ApiReason::kUnknown;
}

// The Status `reason` strings of k8s.io/apimachinery/pkg/apis/meta/v1 (StatusReason).
std::optional<ApiReason> ReasonFromText(std::string_view text) {
  struct Entry { std::string_view text; ApiReason reason; };
  static constexpr Entry kTable[] = {
      {"BadRequest", ApiReason::kBadRequest},     {"Unauthorized", ApiReason::kUnauthorized},
      {"Forbidden", ApiReason::kForbidden},       {"NotFound", ApiReason::kNotFound},
      {"MethodNotAllowed", ApiReason::kMethodNotAllowed},
      {"AlreadyExists", ApiReason::kAlreadyExists}, {"Conflict", ApiReason::kConflict},
      {"Gone", ApiReason::kGone},                 {"Expired", ApiReason::kGone},
      {"UnsupportedMediaType", ApiReason::kUnsupportedMediaType},
      {"Invalid", ApiReason::kInvalid},           {"TooManyRequests", ApiReason::kTooManyRequests},
      {"InternalError", ApiReason::kServerError}, {"ServiceUnavailable", ApiReason::kServiceUnavailable},
      {"Timeout", ApiReason::kTimeout},           {"ServerTimeout", ApiReason::kTimeout},
  };
  for (const Entry& e : kTable) {
    if (e.text == text) return e.reason;
  }
  return std::nullopt;
}

}  // namespace

const char* ApiReasonName(ApiReason reason) {
  switch (reason) {
    case ApiReason::kOk: return "OK";
    case ApiReason::kBadRequest: return "BadRequest";
    case ApiReason::kUnauthorized: return "Unauthorized";
    case ApiReason::kForbidden: return "Forbidden";
    case ApiReason::kNotFound: return "NotFound";
    case ApiReason::kMethodNotAllowed: return "MethodNotAllowed";
    case ApiReason::kAlreadyExists: return "AlreadyExists";
    case ApiReason::kConflict: return "Conflict";
    case ApiReason::kGone: return "Gone";
    case ApiReason::kUnsupportedMediaType: return "UnsupportedMediaType";
    case ApiReason::kInvalid: return "Invalid";
    case ApiReason::kTooManyRequests: return "TooManyRequests";
    case ApiReason::kServerError: return "ServerError";
    case ApiReason::kServiceUnavailable: return "ServiceUnavailable";
    case ApiReason::kTimeout: return "Timeout";
    case ApiReason::kTransport: return "Transport";
    case ApiReason::kCancelled: return "Cancelled";
    case ApiReason::kUnknown: return "Unknown";
  }
  return "Unknown";
}

ApiError ApiError::FromStatusObject(const nlohmann::json& status, int fallback_code) {
  int code = fallback_code;
  std::string message;
  std::optional<ApiReason> reason;
  std::optional<int> retry_after;
  if (status.is_object()) {
    auto c = status.find("code");
    if (c != status.end() && c->is_number_integer()) code = c->get<int>();
    auto m = status.find("message");
    if (m != status.end() && m->is_string()) message = m->get<std::string>();
    auto r = status.find("reason");
    if (r != status.end() && r->is_string()) reason = ReasonFromText(r->get_ref<const std::string&>());
    auto d = status.find("details");
    if (d != status.end() && d->is_object()) {
      auto ra = d->find("retryAfterSeconds");
      if (ra != d->end() && ra->is_number_integer()) retry_after = ra->get<int>();
    }
  }
  ApiReason kind = reason.value_or(ReasonFromCode(code));
  // A 409 whose reason is not AlreadyExists is an optimistic-concurrency conflict.
  if (!reason && code == 409) kind = ApiReason::kConflict;
  if (kind == ApiReason::kOk) kind = ApiReason::kUnknown;
  if (message.empty()) message = "the server answered " + std::to_string(code);
  ApiError error(code, kind, std::move(message));
  if (retry_after) error.set_retry_after_seconds(*retry_after);
  return error;
}

ApiError ApiError::FromResponse(int http_code, std::string_view body) {
  nlohmann::json parsed = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object() && parsed.value("kind", "") == "Status") {
    ApiError error = FromStatusObject(parsed, http_code);
    error.http_code_ = http_code;  // the transport's code is what actually happened
    return error;
  }
  std::string text(body.substr(0, 500));
  if (text.empty()) text = "the server answered " + std::to_string(http_code) + " with no body";
  return ApiError(http_code, ReasonFromCode(http_code), std::move(text));
}

bool ApiError::IsTransient() const {
  switch (reason_) {
    case ApiReason::kConflict:
    case ApiReason::kTooManyRequests:
    case ApiReason::kServerError:
    case ApiReason::kServiceUnavailable:
    case ApiReason::kTimeout:
    case ApiReason::kTransport:
      return true;
    default:
      return false;
  }
}

std::string ApiError::ToString() const {
  if (ok()) return "OK";
  std::string out = ApiReasonName(reason_);
  if (http_code_ != 0) out += " (" + std::to_string(http_code_) + ")";
  out += ": " + message_;
  return out;
}

Status ApiError::ToStatus() const {
  if (ok()) return Status::Ok();
  StatusCode code = StatusCode::kInternal;
  switch (reason_) {
    case ApiReason::kNotFound: code = StatusCode::kNotFound; break;
    case ApiReason::kBadRequest:
    case ApiReason::kInvalid:
    case ApiReason::kUnsupportedMediaType:
    case ApiReason::kMethodNotAllowed: code = StatusCode::kInvalidArgument; break;
    case ApiReason::kAlreadyExists:
    case ApiReason::kUnauthorized:
    case ApiReason::kForbidden: code = StatusCode::kFailedPrecondition; break;
    case ApiReason::kGone: code = StatusCode::kOutOfRange; break;
    default: code = IsTransient() ? StatusCode::kUnavailable : StatusCode::kInternal; break;
  }
  return Status(code, ToString());
}

}  // namespace kubemoe::k8s

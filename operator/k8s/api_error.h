// Errors from the Kubernetes API as values: the HTTP code, the Status `reason` and its message.
//
// The API server answers failed requests with a metav1.Status body
// ({"kind":"Status","status":"Failure","reason":"NotFound","code":404,"message":"..."}).
// ApiError keeps those three fields and classifies them so callers can branch on the kind of
// failure (retry a Conflict, relist on Gone, give up on Invalid) without string matching.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json_fwd.hpp>

#include "common/status.h"

namespace kubemoe::k8s {

// The kind of failure. Taken from the Status `reason` when the server sent one, else from the
// HTTP code.
enum class ApiReason {
  kOk = 0,
  kBadRequest,       // 400
  kUnauthorized,     // 401
  kForbidden,        // 403
  kNotFound,         // 404
  kMethodNotAllowed, // 405
  kAlreadyExists,    // 409, reason AlreadyExists
  kConflict,         // 409 (optimistic-concurrency failure)
  kGone,             // 410, reasons Gone and Expired: the resourceVersion is too old; relist
  kUnsupportedMediaType,  // 415
  kInvalid,          // 422
  kTooManyRequests,  // 429
  kServerError,      // 500 and other 5xx
  kServiceUnavailable,  // 503
  kTimeout,          // 504, or reason Timeout / ServerTimeout
  kTransport,        // no HTTP answer (connection refused, reset, TLS failure, client timeout)
  kCancelled,        // the caller cancelled the request
  kUnknown,          // any other HTTP error code
};

// "NotFound", "Conflict", ... (the enum's name without the k).
const char* ApiReasonName(ApiReason reason);

class ApiError {
 public:
  // OK.
  ApiError() = default;
  ApiError(int http_code, ApiReason reason, std::string message)
      : http_code_(http_code), reason_(reason), message_(std::move(message)) {}

  // Classifies a failed HTTP response. `body` is parsed as a metav1.Status when it is one (its
  // reason, code and message win); otherwise the HTTP code decides and the body text (cut to
  // 500 bytes) is the message. REQUIRES: http_code >= 400.
  static ApiError FromResponse(int http_code, std::string_view body);
  // Classifies a metav1.Status object (e.g. from a watch ERROR event). `fallback_code` is used
  // when the object has no numeric code.
  static ApiError FromStatusObject(const nlohmann::json& status, int fallback_code = 500);
  static ApiError Transport(std::string message) { return {0, ApiReason::kTransport, std::move(message)}; }
  static ApiError Cancelled() { return {0, ApiReason::kCancelled, "request cancelled"}; }

  bool ok() const { return reason_ == ApiReason::kOk; }
  int http_code() const { return http_code_; }  // 0 when no HTTP answer
  ApiReason reason() const { return reason_; }
  const std::string& message() const { return message_; }
  // Seconds from a Retry-After header or Status details.retryAfterSeconds, if any.
  std::optional<int> retry_after_seconds() const { return retry_after_seconds_; }
  void set_retry_after_seconds(int s) { retry_after_seconds_ = s; }

  bool IsNotFound() const { return reason_ == ApiReason::kNotFound; }
  bool IsAlreadyExists() const { return reason_ == ApiReason::kAlreadyExists; }
  bool IsConflict() const { return reason_ == ApiReason::kConflict; }
  bool IsGone() const { return reason_ == ApiReason::kGone; }
  // True for failures that may pass on their own: 409 Conflict, 429, 5xx, 504, transport errors.
  bool IsTransient() const;

  // "Conflict (409): message", or "OK".
  std::string ToString() const;
  // The nearest common Status (NotFound -> kNotFound, Invalid -> kInvalidArgument, transient ->
  // kUnavailable, ...), message = ToString().
  Status ToStatus() const;

 private:
  int http_code_ = 0;
  ApiReason reason_ = ApiReason::kOk;
  std::string message_;
  std::optional<int> retry_after_seconds_;
};

// A value or the ApiError that prevented it; misuse is defined as for StatusOr (common/status.h):
// built from an OK error it holds an internal error, and dereferencing an error ends the process.
template <typename T>
class KUBEMOE_NODISCARD ApiResult {
 public:
  ApiResult(ApiError error)
      : error_(error.ok() ? ApiError(0, ApiReason::kUnknown,
                                     "ApiResult was built from an OK ApiError, which carries no value")
                          : std::move(error)) {}
  ApiResult(T value) : value_(std::move(value)) {}

  bool ok() const { return error_.ok(); }
  const ApiError& error() const { return error_; }
  T& value() & { return Checked(); }
  const T& value() const& { return Checked(); }
  T&& value() && { return std::move(Checked()); }
  T* operator->() { return &Checked(); }
  const T* operator->() const { return &Checked(); }
  T& operator*() { return Checked(); }
  const T& operator*() const { return Checked(); }

 private:
  T& Checked() {
    if (!value_.has_value()) internal::DieOnMissingValue(error_.ToStatus());
    return *value_;
  }
  const T& Checked() const {
    if (!value_.has_value()) internal::DieOnMissingValue(error_.ToStatus());
    return *value_;
  }

  ApiError error_;
  std::optional<T> value_;
};

}  // namespace kubemoe::k8s

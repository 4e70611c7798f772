// Errors as values at module edges (LevelDB/Abseil style): a Status is OK or carries a code and a
// message a user can act on; StatusOr<T> is a T or the Status that explains why there is none.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace kubemoe {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // the input (file, request, config) is malformed
  kNotFound,         // a named thing (file, tensor, field) does not exist
  kOutOfRange,       // an index or offset lies outside what exists
  kDataLoss,         // a file is truncated or corrupt
  kFailedPrecondition,
  kUnavailable,      // a peer or resource cannot be reached now
  kInternal,
  kUnimplemented,
  kDeadlineExceeded,   // a peer did not answer in time
  kResourceExhausted,  // a bounded queue or budget is full; retry later
};

const char* StatusCodeName(StatusCode code);

class Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "CODE: message", or "OK".
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status OutOfRange(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
inline Status DataLoss(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
inline Status FailedPrecondition(std::string m) {
  return {StatusCode::kFailedPrecondition, std::move(m)};
}
inline Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
inline Status DeadlineExceeded(std::string m) {
  return {StatusCode::kDeadlineExceeded, std::move(m)};
}
inline Status ResourceExhausted(std::string m) {
  return {StatusCode::kResourceExhausted, std::move(m)};
}

// A value or the error that prevented it. REQUIRES: value() only when ok().
template <typename T>
class StatusOr {
 public:
  StatusOr(Status status) : status_(std::move(status)) { assert(!status_.ok()); }
  StatusOr(T value) : value_(std::move(value)) {}

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }
  const T& operator*() const { return *value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace kubemoe

// Returns early from the calling function when `expr` yields a non-OK Status.
#define KUBEMOE_RETURN_IF_ERROR(expr)          \
  do {                                         \
    ::kubemoe::Status kubemoe_status_ = (expr); \
    if (!kubemoe_status_.ok()) return kubemoe_status_; \
  } while (0)

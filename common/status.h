// Errors as values at module edges (LevelDB/Abseil style): a Status is OK or carries a code and a
// message a user can act on; StatusOr<T> is a T or the Status that explains why there is none.
// Both are [[nodiscard]]: dropping one is a compile error in project code (-Werror). Where a
// failure really does not matter, say so with `.IgnoreError()`.
#pragma once

#include <optional>
#include <string>
#include <utility>

// nvcc's front end reports the assignment `status = Call();` as ignoring a [[nodiscard]] value
// (operator= returns a reference to the type), so CUDA sources (.cu) are compiled without the
// attribute; every header they share is also compiled by g++, where it is checked.
#if defined(__CUDACC__)
#define KUBEMOE_NODISCARD
#else
#define KUBEMOE_NODISCARD [[nodiscard]]
#endif

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

class KUBEMOE_NODISCARD Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "CODE: message", or "OK".
  std::string ToString() const;
  // Drops the status on purpose (best-effort work whose failure changes nothing).
  void IgnoreError() const {}

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

namespace internal {
// Ends the process with `status` on stderr: a StatusOr without a value was dereferenced.
[[noreturn]] void DieOnMissingValue(const Status& status);
// What a StatusOr built from an OK Status holds instead (there is no value to go with it).
Status OkStatusWithoutValue();
}  // namespace internal

// A value or the error that prevented it. Misuse is defined in every build type, not only where
// asserts are on: a StatusOr built from an OK Status holds an INTERNAL error instead (so ok() is
// false and callers take their error path), and value(), * and -> on an error end the process
// with the status message instead of reading an empty optional.
template <typename T>
class KUBEMOE_NODISCARD StatusOr {
 public:
  StatusOr(Status status)
      : status_(status.ok() ? internal::OkStatusWithoutValue() : std::move(status)) {}
  StatusOr(T value) : value_(std::move(value)) {}

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { return Checked(); }
  const T& value() const& { return Checked(); }
  T&& value() && { return std::move(Checked()); }
  T* operator->() { return &Checked(); }
  const T* operator->() const { return &Checked(); }
  T& operator*() { return Checked(); }
  const T& operator*() const { return Checked(); }

 private:
  T& Checked() {
    if (!value_.has_value()) internal::DieOnMissingValue(status_);
    return *value_;
  }
  const T& Checked() const {
    if (!value_.has_value()) internal::DieOnMissingValue(status_);
    return *value_;
  }

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

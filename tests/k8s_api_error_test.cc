// Mapping of failed responses (Kubernetes Status bodies) to ApiError (operator/k8s/api_error.h).
#include "operator/k8s/api_error.h"

#include <gtest/gtest.h>

namespace kubemoe::k8s {
namespace {

std::string StatusBody(int code, const std::string& reason, const std::string& message) {
  return R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":")" +
         message + R"(","reason":")" + reason + R"(","code":)" + std::to_string(code) + "}";
}

TEST(ApiErrorTest, StatusReasonsMap) {
  struct Case { int code; const char* reason; ApiReason want; };
  const Case cases[] = {
      {404, "NotFound", ApiReason::kNotFound},         {409, "AlreadyExists", ApiReason::kAlreadyExists},
      {409, "Conflict", ApiReason::kConflict},         {410, "Expired", ApiReason::kGone},
      {410, "Gone", ApiReason::kGone},                 {403, "Forbidden", ApiReason::kForbidden},
      {422, "Invalid", ApiReason::kInvalid},           {429, "TooManyRequests", ApiReason::kTooManyRequests},
      {500, "InternalError", ApiReason::kServerError}, {503, "ServiceUnavailable", ApiReason::kServiceUnavailable},
      {504, "Timeout", ApiReason::kTimeout},
  };
  for (const Case& c : cases) {
    ApiError e = ApiError::FromResponse(c.code, StatusBody(c.code, c.reason, "msg " + std::string(c.reason)));
    EXPECT_EQ(e.reason(), c.want) << c.reason;
    EXPECT_EQ(e.http_code(), c.code);
    EXPECT_EQ(e.message(), "msg " + std::string(c.reason));
    EXPECT_FALSE(e.ok());
  }
}

TEST(ApiErrorTest, CodeDecidesWithoutStatusBody) {
  ApiError e = ApiError::FromResponse(502, "<html>bad gateway</html>");
  EXPECT_EQ(e.reason(), ApiReason::kServerError);
  EXPECT_EQ(e.message(), "<html>bad gateway</html>");
  EXPECT_TRUE(e.IsTransient());
  // A Status body without reason: a 409 is a conflict.
  ApiError conflict = ApiError::FromResponse(409, R"({"kind":"Status","code":409})");
  EXPECT_TRUE(conflict.IsConflict());
  EXPECT_TRUE(conflict.IsTransient());
  EXPECT_EQ(ApiError::FromResponse(418, "").reason(), ApiReason::kUnknown);
}

TEST(ApiErrorTest, RetryAfterFromDetails) {
  ApiError e = ApiError::FromResponse(
      429, R"({"kind":"Status","reason":"TooManyRequests","code":429,"details":{"retryAfterSeconds":3}})");
  ASSERT_TRUE(e.retry_after_seconds().has_value());
  EXPECT_EQ(*e.retry_after_seconds(), 3);
}

TEST(ApiErrorTest, TransienceAndStatusConversion) {
  EXPECT_FALSE(ApiError::FromResponse(422, StatusBody(422, "Invalid", "x")).IsTransient());
  EXPECT_FALSE(ApiError::FromResponse(404, StatusBody(404, "NotFound", "x")).IsTransient());
  EXPECT_TRUE(ApiError::Transport("refused").IsTransient());
  EXPECT_EQ(ApiError::FromResponse(404, StatusBody(404, "NotFound", "x")).ToStatus().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(ApiError::FromResponse(422, StatusBody(422, "Invalid", "x")).ToStatus().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ApiError::FromResponse(500, StatusBody(500, "InternalError", "x")).ToStatus().code(),
            StatusCode::kUnavailable);
  EXPECT_EQ(ApiError().ToStatus().code(), StatusCode::kOk);
  EXPECT_EQ(ApiError::FromResponse(409, StatusBody(409, "Conflict", "stale")).ToString(),
            "Conflict (409): stale");
}

}  // namespace
}  // namespace kubemoe::k8s

// Status and StatusOr: misuse is defined in every build type (not only where assert is on).
#include "common/status.h"

#include <string>

#include <gtest/gtest.h>

namespace kubemoe {
namespace {

TEST(StatusOrTest, HoldsAValueOrAnError) {
  StatusOr<std::string> value = std::string("weights");
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(*value, "weights");
  EXPECT_EQ(value->size(), 7u);

  StatusOr<std::string> error = NotFound("no tensor x");
  EXPECT_FALSE(error.ok());
  EXPECT_EQ(error.status().code(), StatusCode::kNotFound);
}

TEST(StatusOrTest, BuiltFromOkStatusIsAnInternalError) {
  // A function that returns Status::Ok() where a value belongs must not look successful.
  StatusOr<int> misuse = Status::Ok();
  EXPECT_FALSE(misuse.ok());
  EXPECT_EQ(misuse.status().code(), StatusCode::kInternal);
  EXPECT_NE(misuse.status().message().find("OK Status"), std::string::npos);
}

TEST(StatusOrDeathTest, DereferencingAnErrorEndsTheProcessWithItsMessage) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  StatusOr<int> error = DataLoss("shard 2 is truncated");
  EXPECT_DEATH((void)error.value(), "StatusOr has no value \\(DATA_LOSS: shard 2 is truncated\\)");
  EXPECT_DEATH((void)*error, "shard 2 is truncated");
  StatusOr<std::string> text = InvalidArgument("bad");
  EXPECT_DEATH((void)text->size(), "INVALID_ARGUMENT: bad");
  EXPECT_DEATH((void)std::move(text).value(), "INVALID_ARGUMENT: bad");
}

}  // namespace
}  // namespace kubemoe

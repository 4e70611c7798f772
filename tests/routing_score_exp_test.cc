// Tests for routing/score_exp.h: the exponential shared by CPU and GPU expert scoring stays within
// 2 ulp of the correctly rounded e^x over the range scoring uses, and handles the edges.
#include "routing/score_exp.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace kubemoe::routing {
namespace {

int64_t Ordered(float f) {
  int32_t i;
  std::memcpy(&i, &f, sizeof i);
  return i < 0 ? -static_cast<int64_t>(i & 0x7fffffff) : i;
}

// Distance in units in the last place between a float and the double it approximates.
double UlpError(float got, double want) {
  const float nearest = static_cast<float>(want);
  const double ulp = std::nextafter(nearest, std::numeric_limits<float>::infinity()) - nearest;
  return std::fabs(static_cast<double>(got) - want) / (ulp > 0 ? ulp : 1e-45);
}

TEST(ScoreExpTest, WithinTwoUlpAcrossTheNormalRange) {
  double worst = 0.0;
  float worst_x = 0.0f;
  // Every 97th float from -87 to 88: about 20 million points, both signs, all binades.
  for (int64_t bits = Ordered(-87.0f); bits <= Ordered(88.0f); bits += 97) {
    int32_t i = bits < 0 ? static_cast<int32_t>((-bits) | 0x80000000LL) : static_cast<int32_t>(bits);
    float x;
    std::memcpy(&x, &i, sizeof x);
    const double err = UlpError(ScoreExp(x), std::exp(static_cast<double>(x)));
    if (err > worst) {
      worst = err;
      worst_x = x;
    }
  }
  EXPECT_LE(worst, 2.0) << "at x = " << worst_x;
}

TEST(ScoreExpTest, EdgesAndSpecialValues) {
  EXPECT_EQ(ScoreExp(0.0f), 1.0f);
  EXPECT_EQ(ScoreExp(-200.0f), 0.0f);
  EXPECT_TRUE(std::isinf(ScoreExp(100.0f)));
  EXPECT_TRUE(std::isnan(ScoreExp(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_EQ(ScoreExp(-std::numeric_limits<float>::infinity()), 0.0f);
  // Subnormal results stay close to exp (relative to the smallest normal).
  for (float x : {-88.0f, -90.0f, -95.0f, -100.0f, -103.0f}) {
    EXPECT_NEAR(ScoreExp(x), std::exp(static_cast<double>(x)), 2 * 1.5e-45) << x;
  }
}

TEST(ScoreExpTest, MonotoneOnAFineGrid) {
  float previous = ScoreExp(-20.0f);
  for (float x = -20.0f; x < 20.0f; x = std::nextafter(x, 21.0f) + 1e-4f) {
    const float e = ScoreExp(x);
    ASSERT_GE(e, previous) << x;
    previous = e;
  }
}

}  // namespace
}  // namespace kubemoe::routing

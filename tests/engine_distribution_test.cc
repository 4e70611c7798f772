// Log-softmax and KL divergence over logit rows: known values, stability with large logits.
#include "engine/distribution.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace kubemoe::engine {
namespace {

TEST(Distribution, LogSoftmaxNormalisesAndSurvivesLargeLogits) {
  std::vector<double> out;
  LogSoftmax(std::vector<float>{1e30f, 1e30f, -1e30f}, out);
  EXPECT_NEAR(out[0], std::log(0.5), 1e-12);
  EXPECT_NEAR(out[1], std::log(0.5), 1e-12);
  EXPECT_TRUE(std::isinf(out[2]) || out[2] < -1e29);
  LogSoftmax(std::vector<float>{0.5f, -1.0f, 2.0f, 3.0f}, out);
  double sum = 0;
  for (double x : out) sum += std::exp(x);
  EXPECT_NEAR(sum, 1.0, 1e-12);
}

TEST(Distribution, KlDivergenceMatchesTheClosedForm) {
  // p = (0.5, 0.5), q = (0.25, 0.75): KL = 0.5 ln 2 + 0.5 ln(2/3).
  const std::vector<float> p = {0.0f, 0.0f};
  const std::vector<float> q = {0.0f, static_cast<float>(std::log(3.0))};
  EXPECT_NEAR(KlDivergenceOfLogits(p, q), 0.5 * std::log(2.0) + 0.5 * std::log(2.0 / 3.0), 1e-7);
  EXPECT_EQ(KlDivergenceOfLogits(q, q), 0.0);
  // Shifting every logit changes nothing.
  const std::vector<float> shifted = {5.0f, 5.0f + static_cast<float>(std::log(3.0))};
  EXPECT_NEAR(KlDivergenceOfLogits(q, shifted), 0.0, 1e-7);
  EXPECT_GT(KlDivergenceOfLogits(q, p), 0.0);
}

}  // namespace
}  // namespace kubemoe::engine

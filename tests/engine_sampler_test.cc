// Sampling: greedy, temperature, top-k and top-p against probabilities computed here by hand,
// and determinism from the seed.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <vector>

#include "engine/sampler.h"

namespace kubemoe::engine {
namespace {

const std::vector<float> kLogits = {1.0f, 3.0f, 0.5f, 3.0f, -2.0f, 2.0f};

std::vector<double> Softmax(const std::vector<float>& logits, double t) {
  std::vector<double> p;
  double sum = 0;
  for (float l : logits) {
    p.push_back(std::exp(l / t));
    sum += p.back();
  }
  for (double& v : p) v /= sum;
  return p;
}

TEST(Sampler, GreedyTakesTheFirstMaximum) {
  Sampler s({.temperature = 0.0f});
  for (int i = 0; i < 5; ++i) EXPECT_EQ(s.Sample(kLogits), 1);
  auto dist = SamplingDistribution(kLogits, {});
  ASSERT_EQ(dist.size(), 1u);
  EXPECT_EQ(dist[0].first, 1);
  EXPECT_EQ(dist[0].second, 1.0f);
}

TEST(Sampler, TemperatureOnly) {
  const auto p = Softmax(kLogits, 0.7);
  auto dist = SamplingDistribution(kLogits, {.temperature = 0.7f});
  ASSERT_EQ(dist.size(), kLogits.size());
  // Most likely first, ties by lower id: 1, 3, 5, 0, 2, 4.
  const int order[] = {1, 3, 5, 0, 2, 4};
  for (size_t i = 0; i < dist.size(); ++i) {
    EXPECT_EQ(dist[i].first, order[i]);
    EXPECT_NEAR(dist[i].second, p[static_cast<size_t>(order[i])], 1e-6);
  }
}

TEST(Sampler, TopKKeepsTheKMostLikelyRenormalised) {
  const auto p = Softmax(kLogits, 1.0);
  auto dist = SamplingDistribution(kLogits, {.temperature = 1.0f, .top_k = 3});
  ASSERT_EQ(dist.size(), 3u);
  const double kept = p[1] + p[3] + p[5];
  EXPECT_EQ(dist[0].first, 1);
  EXPECT_EQ(dist[1].first, 3);
  EXPECT_EQ(dist[2].first, 5);
  EXPECT_NEAR(dist[0].second, p[1] / kept, 1e-6);
  EXPECT_NEAR(dist[2].second, p[5] / kept, 1e-6);
}

TEST(Sampler, TopPKeepsTheShortestPrefixReachingP) {
  const auto p = Softmax(kLogits, 1.0);
  // p1 = p3 = 0.386, p5 = 0.142, p0 = 0.052, ...: 0.5 needs two tokens, 0.8 three.
  auto two = SamplingDistribution(kLogits, {.temperature = 1.0f, .top_p = 0.5f});
  ASSERT_EQ(two.size(), 2u);
  EXPECT_NEAR(two[0].second, 0.5, 1e-6);
  auto three = SamplingDistribution(kLogits, {.temperature = 1.0f, .top_p = 0.8f});
  ASSERT_EQ(three.size(), 3u);
  EXPECT_NEAR(three[2].second, p[5] / (p[1] + p[3] + p[5]), 1e-6);
  // A tiny top_p still keeps one token.
  EXPECT_EQ(SamplingDistribution(kLogits, {.temperature = 1.0f, .top_p = 1e-6f}).size(), 1u);
  // top-k first, then top-p over the renormalised survivors: with k = 3 the first two hold
  // 0.772 / 0.914 = 0.845 >= 0.8 of the mass, so two tokens remain (three without top-k).
  auto k3 = SamplingDistribution(kLogits, {.temperature = 1.0f, .top_p = 0.8f, .top_k = 3});
  ASSERT_EQ(k3.size(), 2u);
  EXPECT_NEAR(k3[0].second, 0.5, 1e-6);
  auto both = SamplingDistribution(kLogits, {.temperature = 1.0f, .top_p = 0.5f, .top_k = 1});
  ASSERT_EQ(both.size(), 1u);
  EXPECT_EQ(both[0].first, 1);
}

TEST(Sampler, SameSeedSameTokensAndFrequenciesMatch) {
  const SamplingParams params{.temperature = 1.0f, .top_p = 0.9f, .top_k = 4, .seed = 1234};
  Sampler a(params), b(params), c({.temperature = 1.0f, .top_p = 0.9f, .top_k = 4, .seed = 99});
  std::vector<int32_t> ta, tb, tc;
  for (int i = 0; i < 64; ++i) {
    ta.push_back(a.Sample(kLogits));
    tb.push_back(b.Sample(kLogits));
    tc.push_back(c.Sample(kLogits));
  }
  EXPECT_EQ(ta, tb);
  EXPECT_NE(ta, tc);

  // Empirical frequencies follow the filtered distribution; filtered-out tokens never appear.
  const auto dist = SamplingDistribution(kLogits, params);
  std::map<int32_t, int> counts;
  const int n = 20000;
  Sampler s(params);
  for (int i = 0; i < n; ++i) ++counts[s.Sample(kLogits)];
  int total = 0;
  for (const auto& [id, prob] : dist) {
    EXPECT_NEAR(counts[id] / static_cast<double>(n), prob, 0.015) << id;
    total += counts[id];
  }
  EXPECT_EQ(total, n);
}

}  // namespace
}  // namespace kubemoe::engine

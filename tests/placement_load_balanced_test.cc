#include "placement/load_balanced.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

namespace kubemoe::placement {
namespace {

using ::testing::HasSubstr;

PlacementSpec Spec(int32_t experts, int32_t layers, int32_t devices) {
  PlacementSpec s;
  s.routed_experts = experts;
  s.moe_layers = layers;
  s.shards = devices;
  s.devices_per_shard = 1;
  return s;
}

std::vector<double> DeviceLoads(const Placement& p, int32_t layer, const std::vector<double>& load) {
  std::vector<double> out(p.num_devices(), 0.0);
  for (int32_t e = 0; e < p.routed_experts; ++e) {
    for (const Slot& s : p.layers[layer][e]) out[p.GlobalDevice(s)] += load[e];
  }
  return out;
}

TEST(LoadBalancedPlacementTest, SpreadsHotExpertsAndKeepsSlotCounts) {
  // Experts 0-3 carry almost all tokens: contiguous would put them all on device 0.
  std::vector<double> load = {100, 90, 80, 70, 1, 1, 1, 1};
  StatusOr<Placement> p = ComputeLoadBalancedPlacement(Spec(8, 1, 4), {load});
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->policy, Policy::kLoadBalanced);
  EXPECT_NE(p->version, 0u);
  EXPECT_EQ(SlotsPerDevice(*p, 0), (std::vector<int32_t>{2, 2, 2, 2}));
  std::vector<int32_t> hot_devices;
  for (int e = 0; e < 4; ++e) hot_devices.push_back(p->GlobalDevice(p->layers[0][e][0]));
  std::sort(hot_devices.begin(), hot_devices.end());
  EXPECT_EQ(hot_devices, (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(p->layers[0][0][0].shard, 0);  // the heaviest goes first, to the lowest device
  EXPECT_EQ(p->layers[0][1][0].shard, 1);
}

TEST(LoadBalancedPlacementTest, BalancesBetterThanContiguousOnSkewedRandomLoads) {
  std::mt19937 rng(7);
  std::exponential_distribution<double> skew(0.2);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<double> load(64);
    for (double& x : load) x = std::floor(skew(rng) * 100);
    StatusOr<Placement> balanced = ComputeLoadBalancedPlacement(Spec(64, 1, 8), {load});
    StatusOr<Placement> contiguous = ComputePlacement(Spec(64, 1, 8));
    ASSERT_TRUE(balanced.ok() && contiguous.ok());
    const std::vector<double> b = DeviceLoads(*balanced, 0, load);
    const std::vector<double> c = DeviceLoads(*contiguous, 0, load);
    EXPECT_LE(*std::max_element(b.begin(), b.end()), *std::max_element(c.begin(), c.end()));
    EXPECT_EQ(SlotsPerDevice(*balanced, 0), std::vector<int32_t>(8, 8));
    // Greedy by descending load: the max device exceeds the mean by at most one expert's load.
    double total = 0;
    for (double x : load) total += x;
    EXPECT_LE(*std::max_element(b.begin(), b.end()),
              total / 8 + *std::max_element(load.begin(), load.end()));
  }
}

TEST(LoadBalancedPlacementTest, LayersAreIndependentAndYamlRoundTrips) {
  std::vector<double> a = {5, 1, 1, 5}, b = {1, 5, 5, 1};
  StatusOr<Placement> p = ComputeLoadBalancedPlacement(Spec(4, 2, 2), {a, b});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(DeviceLoads(*p, 0, a), (std::vector<double>{6, 6}));
  EXPECT_EQ(DeviceLoads(*p, 1, b), (std::vector<double>{6, 6}));
  StatusOr<Placement> parsed = ParsePlacementYaml(ToYaml(*p), "test");
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(parsed->version, p->version);
  EXPECT_EQ(parsed->policy, Policy::kLoadBalanced);
}

TEST(LoadBalancedPlacementTest, RejectsBadInput) {
  EXPECT_THAT(ComputeLoadBalancedPlacement(Spec(4, 2, 2), {{1, 1, 1, 1}}).status().message(),
              HasSubstr("cover 1 MoE layers"));
  EXPECT_THAT(ComputeLoadBalancedPlacement(Spec(4, 1, 2), {{1, 1, 1}}).status().message(),
              HasSubstr("have 3 entries"));
  EXPECT_THAT(ComputeLoadBalancedPlacement(Spec(4, 1, 2), {{1, -1, 1, 1}}).status().message(),
              HasSubstr("expert 1 must be finite"));
  PlacementSpec s = Spec(4, 1, 2);
  s.redundant.push_back({std::nullopt, 0, 2});
  EXPECT_THAT(ComputeLoadBalancedPlacement(s, {{1, 1, 1, 1}}).status().message(),
              HasSubstr("redundant must be empty"));
  s = Spec(4, 1, 2);
  s.top_k = 3;
  s.device_limit = 1;  // one device hosts 2 experts < top_k
  EXPECT_FALSE(ComputeLoadBalancedPlacement(s, {{1, 1, 1, 1}}).ok());
  s.policy = Policy::kLoadBalanced;
  EXPECT_THAT(ComputePlacement(s).status().message(), HasSubstr("measured expert loads"));
}

}  // namespace
}  // namespace kubemoe::placement

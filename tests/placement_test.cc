// Placement: contiguous / round-robin layout, replicas, feasibility, version, YAML round trip and
// the parser's errors. Expected layouts below were worked out by hand from floor(e * D / E).
#include "placement/placement.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <bit>
#include <random>
#include <set>
#include <string>

#include "routing/device_limited.h"

namespace kubemoe::placement {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

PlacementSpec Spec(int32_t experts, int32_t layers, int32_t shards, int32_t devices) {
  PlacementSpec s;
  s.routed_experts = experts;
  s.moe_layers = layers;
  s.shards = shards;
  s.devices_per_shard = devices;
  return s;
}

TEST(PlacementTest, ContiguousTinyTwoShards) {
  StatusOr<Placement> p = ComputePlacement(Spec(16, 2, 2, 1));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  for (int layer = 0; layer < 2; ++layer) {
    EXPECT_THAT(ExpertsOnDevice(*p, layer, 0), ElementsAre(0, 1, 2, 3, 4, 5, 6, 7));
    EXPECT_THAT(ExpertsOnDevice(*p, layer, 1), ElementsAre(8, 9, 10, 11, 12, 13, 14, 15));
  }
  EXPECT_EQ(p->layers[0][9], (std::vector<Slot>{{1, 0}}));
  EXPECT_NE(p->version, 0u);
}

TEST(PlacementTest, ContiguousUnevenSplit) {
  // 10 experts over 4 devices: floor(e*4/10) = 0 0 0 1 1 2 2 2 3 3.
  StatusOr<Placement> p = ComputePlacement(Spec(10, 1, 2, 2));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_THAT(ExpertsOnDevice(*p, 0, 0), ElementsAre(0, 1, 2));
  EXPECT_THAT(ExpertsOnDevice(*p, 0, 1), ElementsAre(3, 4));
  EXPECT_THAT(ExpertsOnDevice(*p, 0, 2), ElementsAre(5, 6, 7));
  EXPECT_THAT(ExpertsOnDevice(*p, 0, 3), ElementsAre(8, 9));
  // Global device 3 is shard 1, local device 1.
  EXPECT_EQ(p->layers[0][9], (std::vector<Slot>{{1, 1}}));
}

TEST(PlacementTest, DeepSeekV2EightDevicesTwentyEach) {
  StatusOr<Placement> p = ComputePlacement(Spec(160, 59, 2, 4));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  for (int d = 0; d < 8; ++d) {
    std::vector<int32_t> experts = ExpertsOnDevice(*p, 58, d);
    ASSERT_EQ(experts.size(), 20u);
    EXPECT_EQ(experts.front(), 20 * d);
    EXPECT_EQ(experts.back(), 20 * d + 19);
  }
}

TEST(PlacementTest, RoundRobin) {
  PlacementSpec s = Spec(8, 1, 1, 4);
  s.policy = Policy::kRoundRobin;
  StatusOr<Placement> p = ComputePlacement(s);
  ASSERT_TRUE(p.ok());
  EXPECT_THAT(ExpertsOnDevice(*p, 0, 1), ElementsAre(1, 5));
  EXPECT_THAT(DevicesOfExpert(*p, 0, 6), ElementsAre(2));
}

TEST(PlacementTest, ReplicasGoToLeastLoadedOtherDevices) {
  PlacementSpec s = Spec(16, 2, 1, 4);  // 4 experts per device
  s.redundant = {{std::nullopt, 0, 2}, {std::nullopt, 1, 2}, {1, 15, 3}};
  StatusOr<Placement> p = ComputePlacement(s);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  // Expert 0 lives on device 0; devices 1..3 tie at 4 slots, the lowest index wins.
  EXPECT_THAT(DevicesOfExpert(*p, 0, 0), ElementsAre(0, 1));
  // Now device 1 has 5 slots, devices 2 and 3 have 4: expert 1 goes to device 2.
  EXPECT_THAT(DevicesOfExpert(*p, 0, 1), ElementsAre(0, 2));
  // The layer-1-only entry: expert 15 (device 3) gets 2 more copies; loads are 5,5,5,4 then
  // device 0 (lowest of the 5s) and so on.
  EXPECT_THAT(DevicesOfExpert(*p, 1, 15), ElementsAre(0, 1, 3));
  EXPECT_THAT(DevicesOfExpert(*p, 0, 15), ElementsAre(3));
  EXPECT_THAT(SlotsPerDevice(*p, 0), ElementsAre(4, 5, 5, 4));
  std::vector<std::vector<int32_t>> view = ExpertDevices(*p, 0);
  ASSERT_EQ(view.size(), 16u);
  EXPECT_THAT(view[0], ElementsAre(0, 1));
}

TEST(PlacementTest, RejectsBadRedundantEntries) {
  PlacementSpec s = Spec(16, 2, 1, 4);
  s.redundant = {{std::nullopt, 16, 2}};
  EXPECT_THAT(ComputePlacement(s).status().message(),
              HasSubstr("experts.redundant[0].expert 16 is out of range [0, 16)"));
  s.redundant = {{2, 0, 2}};
  EXPECT_THAT(ComputePlacement(s).status().message(), HasSubstr("experts.redundant[0].layer 2"));
  s.redundant = {{std::nullopt, 0, 5}};
  EXPECT_THAT(ComputePlacement(s).status().message(), HasSubstr("replicas must be in [1, 4]"));
}

TEST(PlacementTest, RejectsMoreDevicesThanExperts) {
  EXPECT_THAT(ComputePlacement(Spec(4, 1, 5, 1)).status().message(),
              HasSubstr("exceeds routedExperts 4"));
  EXPECT_THAT(ComputePlacement(Spec(4, 1, 0, 1)).status().message(),
              HasSubstr("shards must be >= 1"));
}

TEST(PlacementTest, DeviceLimitFeasibility) {
  PlacementSpec s = Spec(160, 1, 1, 8);
  s.top_k = 6;
  s.device_limit = 3;  // 3 x 20 >= 6
  EXPECT_TRUE(ComputePlacement(s).ok());
  s = Spec(16, 1, 1, 8);  // 2 experts per device
  s.top_k = 6;
  s.device_limit = 2;  // 2 x 2 < 6
  EXPECT_THAT(ComputePlacement(s).status().message(),
              HasSubstr("deviceLimit 2 is infeasible for topK 6"));
  s.device_limit = 3;  // 3 x 2 = 6
  EXPECT_TRUE(ComputePlacement(s).ok());
  s.device_limit = 9;
  EXPECT_THAT(ComputePlacement(s).status().message(), HasSubstr("must be in [1, 8]"));
  // Uneven split 3,2,3,2: the two smallest devices host 4 experts.
  StatusOr<Placement> uneven = ComputePlacement(Spec(10, 1, 1, 4));
  ASSERT_TRUE(uneven.ok());
  EXPECT_TRUE(CheckRoutingFeasible(*uneven, 4, 2).ok());
  EXPECT_FALSE(CheckRoutingFeasible(*uneven, 5, 2).ok());
  EXPECT_FALSE(CheckRoutingFeasible(*uneven, 11, 0).ok());
}

// Whether every set of `m` devices hosts >= k distinct experts in every layer, by brute force
// over all subsets: the reference for CheckRoutingFeasible, independent of its implementation.
bool EveryDeviceSetHostsTopK(const Placement& p, int32_t k, int32_t m) {
  const int32_t devices = p.num_devices();
  for (int32_t l = 0; l < p.moe_layers; ++l) {
    for (uint32_t mask = 0; mask < (1u << devices); ++mask) {
      if (std::popcount(mask) != m) continue;
      std::set<int32_t> experts;
      for (int32_t d = 0; d < devices; ++d) {
        if ((mask >> d & 1u) == 0) continue;
        for (int32_t e : ExpertsOnDevice(p, l, d)) experts.insert(e);
      }
      if (static_cast<int32_t>(experts.size()) < k) return false;
    }
  }
  return true;
}

TEST(PlacementTest, DeviceLimitRuleCountsDistinctExpertsLikeRouting) {
  // 4 experts on 4 devices, expert 0 replicated on every device: {0} {0,1} {0,2} {0,3}. The two
  // devices with the fewest experts hold 1 + 2 = 3 slots, but devices {0, 1} host only 2 distinct
  // experts, so K = 3 with M = 2 is infeasible; M = 3 is feasible (any 3 devices host >= 3).
  PlacementSpec s = Spec(4, 1, 4, 1);
  s.redundant = {{std::nullopt, 0, 4}};
  StatusOr<Placement> p = ComputePlacement(s);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ASSERT_THAT(ExpertsOnDevice(*p, 0, 1), ElementsAre(0, 1));
  const routing::DevicePlacement view{p->num_devices(), ExpertDevices(*p, 0)};

  const Status placed = CheckRoutingFeasible(*p, 3, 2);
  EXPECT_FALSE(placed.ok());
  EXPECT_FALSE(routing::ValidateDeviceLimit(view, 4, 3, 2).ok());
  EXPECT_THAT(placed.message(), HasSubstr("in MoE layer 0"));
  EXPECT_THAT(placed.message(), HasSubstr("devices {0,1} together host only 2 experts"));
  s.top_k = 3;
  s.device_limit = 2;
  EXPECT_THAT(ComputePlacement(s).status().message(),
              HasSubstr("deviceLimit 2 is infeasible for topK 3 in MoE layer 0"));

  EXPECT_TRUE(CheckRoutingFeasible(*p, 3, 3).ok());
  EXPECT_TRUE(routing::ValidateDeviceLimit(view, 4, 3, 3).ok());
  s.device_limit = 3;
  EXPECT_TRUE(ComputePlacement(s).ok());

  // Layer-specific replicas: layer 0 gets 3 copies of every expert (each device then hosts >= 2
  // distinct experts, every pair >= 3), layer 1 keeps one expert per device. The error names the
  // layer that fails.
  s = Spec(4, 2, 4, 1);
  for (int32_t e = 0; e < 4; ++e) s.redundant.push_back({0, e, 3});
  p = ComputePlacement(s);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_THAT(CheckRoutingFeasible(*p, 3, 2).message(), HasSubstr("in MoE layer 1"));
}

TEST(PlacementTest, DeviceLimitRuleMatchesBruteForceOnRandomPlacements) {
  std::mt19937 rng(7);
  auto pick = [&rng](int32_t lo, int32_t hi) {
    return std::uniform_int_distribution<int32_t>(lo, hi)(rng);
  };
  for (int iter = 0; iter < 300; ++iter) {
    const int32_t experts = pick(1, 10);
    const int32_t devices = pick(1, std::min(experts, 6));
    PlacementSpec s = Spec(experts, 2, 1, devices);
    s.policy = pick(0, 1) == 0 ? Policy::kContiguous : Policy::kRoundRobin;
    for (int32_t r = pick(0, 4); r > 0; --r) {
      RedundantExpert entry;
      if (pick(0, 1) == 1) entry.layer = pick(0, 1);
      entry.expert = pick(0, experts - 1);
      entry.replicas = pick(1, devices);
      s.redundant.push_back(entry);
    }
    StatusOr<Placement> p = ComputePlacement(s);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    for (int32_t k = 1; k <= experts; ++k) {
      for (int32_t m = 1; m <= devices; ++m) {
        EXPECT_EQ(CheckRoutingFeasible(*p, k, m).ok(), EveryDeviceSetHostsTopK(*p, k, m))
            << "iteration " << iter << ": " << experts << " experts on " << devices
            << " devices, K=" << k << ", M=" << m << "\n"
            << ToYaml(*p);
      }
    }
  }
}

TEST(PlacementTest, DeviceLimitRuleOnTooManyDeviceSetsStillRejectsTheFewestExperts) {
  // 40 devices with one expert each and M = 10: C(40, 10) sets are too many to enumerate, but the
  // 10 devices with the fewest experts host only 10 < 11, which is enough to reject.
  StatusOr<Placement> p = ComputePlacement(Spec(40, 1, 1, 40));
  ASSERT_TRUE(p.ok());
  EXPECT_THAT(CheckRoutingFeasible(*p, 11, 10).message(), HasSubstr("host only 10 experts"));
  EXPECT_TRUE(CheckRoutingFeasible(*p, 10, 10).ok());
}

TEST(PlacementTest, VersionIsDeterministicAndTracksContent) {
  StatusOr<Placement> a = ComputePlacement(Spec(64, 26, 1, 8));
  StatusOr<Placement> b = ComputePlacement(Spec(64, 26, 1, 8));
  StatusOr<Placement> scaled = ComputePlacement(Spec(64, 26, 2, 8));
  StatusOr<Placement> split = ComputePlacement(Spec(64, 26, 2, 4));
  ASSERT_TRUE(a.ok() && b.ok() && scaled.ok() && split.ok());
  EXPECT_EQ(a->version, b->version);
  EXPECT_NE(a->version, scaled->version);
  EXPECT_NE(a->version, split->version);  // same 8 devices, different shard boundaries
  EXPECT_LT(a->version, uint64_t{1} << 63);
  PlacementSpec rr = Spec(64, 26, 1, 8);
  rr.policy = Policy::kRoundRobin;
  EXPECT_NE(ComputePlacement(rr)->version, a->version);
}

TEST(PlacementTest, YamlRoundTrip) {
  PlacementSpec s = Spec(16, 2, 2, 2);
  s.redundant = {{0, 3, 3}};
  StatusOr<Placement> p = ComputePlacement(s);
  ASSERT_TRUE(p.ok());
  std::string yaml = ToYaml(*p);
  EXPECT_THAT(yaml, HasSubstr("kind: ExpertPlacement"));
  EXPECT_THAT(yaml, HasSubstr("version: " + std::to_string(p->version)));
  StatusOr<Placement> back = ParsePlacementYaml(yaml, "placement.yaml");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->version, p->version);
  EXPECT_EQ(back->layers, p->layers);
  EXPECT_EQ(back->shards, 2);
  EXPECT_EQ(back->devices_per_shard, 2);
  EXPECT_EQ(ToYaml(*back), yaml);
}

constexpr char kSmall[] = R"(kind: ExpertPlacement
version: VERSION
routedExperts: 4
moeLayers: 1
shards: 1
devicesPerShard: 2
policy: contiguous
layers:
  - layer: 0
    devices:
      - {shard: 0, device: 0, experts: [0, 1]}
      - {shard: 0, device: 1, experts: [2, 3]}
)";

std::string WithVersion(std::string text, const std::string& version) {
  return text.replace(text.find("VERSION"), 7, version);
}

TEST(PlacementTest, ParsesHandWrittenYamlAndChecksVersion) {
  StatusOr<Placement> reference = ComputePlacement(Spec(4, 1, 1, 2));
  ASSERT_TRUE(reference.ok());
  StatusOr<Placement> p =
      ParsePlacementYaml(WithVersion(kSmall, std::to_string(reference->version)), "x.yaml");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->layers, reference->layers);
  StatusOr<Placement> tampered = ParsePlacementYaml(WithVersion(kSmall, "12345"), "x.yaml");
  EXPECT_THAT(tampered.status().message(), HasSubstr("x.yaml: version 12345 does not match"));
}

TEST(PlacementTest, ParserErrorsNameTheProblem) {
  const std::string v = std::to_string(ComputePlacement(Spec(4, 1, 1, 2))->version);
  std::string good = WithVersion(kSmall, v);
  auto with = [&](const std::string& from, const std::string& to) {
    std::string t = good;
    t.replace(t.find(from), from.size(), to);
    return ParsePlacementYaml(t, "p.yaml").status().message();
  };
  EXPECT_THAT(with("experts: [2, 3]", "experts: [2]"), HasSubstr("expert 3 is not placed"));
  EXPECT_THAT(with("experts: [2, 3]", "experts: [2, 3, 3]"), HasSubstr("expert 3 listed twice"));
  EXPECT_THAT(with("shard: 0, device: 1", "shard: 0, device: 2"),
              HasSubstr("\"device\" = 2 is out of range [0, 1]"));
  EXPECT_THAT(with("shard: 0, device: 1", "shard: 0, device: 0"), HasSubstr("listed twice"));
  EXPECT_THAT(with("experts: [2, 3]", "experts: [2, 7]"), HasSubstr("expert index in [0, 4)"));
  EXPECT_THAT(with("moeLayers: 1", "moeLayers: 2"), HasSubstr("\"layers\" has 1 entries"));
  EXPECT_THAT(with("kind: ExpertPlacement", "kind: Other"), HasSubstr("kind must be"));
  EXPECT_THAT(with("policy: contiguous", "policy: random"), HasSubstr("placement policy must be"));
  EXPECT_THAT(ParsePlacementYaml("{unclosed", "p.yaml").status().message(),
              HasSubstr("p.yaml: invalid YAML"));
  EXPECT_THAT(ParsePlacementYaml("- a\n- b\n", "p.yaml").status().message(),
              HasSubstr("must be a YAML mapping"));
}

TEST(PlacementTest, ValidateCatchesBrokenStructures) {
  Placement p = *ComputePlacement(Spec(4, 1, 1, 2));
  EXPECT_TRUE(ValidatePlacement(p).ok());
  Placement dup = p;
  dup.layers[0][1].push_back(dup.layers[0][1][0]);
  EXPECT_THAT(ValidatePlacement(dup).message(), HasSubstr("layer 0 expert 1 is placed twice"));
  Placement missing = p;
  missing.layers[0][2].clear();
  EXPECT_THAT(ValidatePlacement(missing).message(), HasSubstr("expert 2 is not placed"));
  Placement bad_shard = p;
  bad_shard.layers[0][0][0].shard = 1;
  EXPECT_THAT(ValidatePlacement(bad_shard).message(), HasSubstr("shard 1 does not exist"));
}

}  // namespace
}  // namespace kubemoe::placement

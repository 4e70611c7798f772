// Unit tests of the routing building blocks: scoring, top-K with its tie-break, gate weights,
// config and placement validation, replica dispatch and the divergence helpers.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "routing/device_limited.h"
#include "routing/dispatch.h"
#include "routing/divergence.h"
#include "routing/gate_config.h"
#include "routing/gate_weights.h"
#include "routing/placement_view.h"
#include "routing/scoring.h"
#include "routing/topk.h"

namespace kubemoe::routing {
namespace {

TEST(RoutingScoring, SoftmaxMatchesDoubleReferenceAndSumsToOne) {
  const std::vector<float> logits = {0.5f, -1.25f, 3.0f, 0.0f, 2.75f, -7.5f};
  std::vector<float> scores(logits.size());
  ASSERT_TRUE(ScoreExperts(ScoringFunc::kSoftmax, logits.data(), 6, scores.data(), 0).ok());
  double denom = 0.0;
  for (float x : logits) denom += std::exp(static_cast<double>(x));
  double sum = 0.0;
  for (size_t i = 0; i < logits.size(); ++i) {
    EXPECT_NEAR(scores[i], std::exp(static_cast<double>(logits[i])) / denom, 3e-7) << i;
    sum += scores[i];
  }
  EXPECT_NEAR(sum, 1.0, 1e-6);
}

TEST(RoutingScoring, SoftmaxIsStableForHugeLogits) {
  // exp(1000) overflows fp32; the max-subtracted form must still give [1/(1+e), e/(1+e)].
  const std::vector<float> logits = {1000.0f, 1001.0f};
  std::vector<float> scores(2);
  ASSERT_TRUE(ScoreExperts(ScoringFunc::kSoftmax, logits.data(), 2, scores.data(), 0).ok());
  EXPECT_NEAR(scores[0], 1.0 / (1.0 + std::exp(1.0)), 1e-7);
  EXPECT_NEAR(scores[1], std::exp(1.0) / (1.0 + std::exp(1.0)), 1e-7);
}

TEST(RoutingScoring, SigmoidIsPerExpert) {
  const std::vector<float> logits = {0.0f, 2.0f, -3.0f, 40.0f, -40.0f};
  std::vector<float> scores(logits.size());
  ASSERT_TRUE(ScoreExperts(ScoringFunc::kSigmoid, logits.data(), 5, scores.data(), 0).ok());
  for (size_t i = 0; i < logits.size(); ++i) {
    EXPECT_NEAR(scores[i], 1.0 / (1.0 + std::exp(-static_cast<double>(logits[i]))), 1e-7) << i;
  }
}

TEST(RoutingScoring, RejectsNonFiniteLogitsNamingTheToken) {
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    const std::vector<float> logits = {0.0f, bad, 1.0f};
    std::vector<float> scores(3);
    const Status s = ScoreExperts(ScoringFunc::kSoftmax, logits.data(), 3, scores.data(), 17);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("token 17, expert 1"), std::string::npos) << s.message();
  }
}

TEST(RoutingTopK, HigherScoreFirst) {
  const std::vector<float> s = {0.1f, 0.7f, 0.3f, 0.9f, 0.5f};
  std::vector<int32_t> out(3);
  ASSERT_EQ(SelectTopK(s.data(), 5, 3, nullptr, out.data()), 3);
  EXPECT_EQ(out, (std::vector<int32_t>{3, 1, 4}));
}

TEST(RoutingTopK, ExactTiesGoToTheLowerIndex) {
  const std::vector<float> all_equal(6, 0.25f);
  std::vector<int32_t> out(4);
  ASSERT_EQ(SelectTopK(all_equal.data(), 6, 4, nullptr, out.data()), 4);
  EXPECT_EQ(out, (std::vector<int32_t>{0, 1, 2, 3}));
  // A tie at the cut: indices 2 and 4 both score 0.5; only the lower one fits.
  const std::vector<float> s = {0.1f, 0.9f, 0.5f, 0.2f, 0.5f, 0.9f};
  ASSERT_EQ(SelectTopK(s.data(), 6, 3, nullptr, out.data()), 3);
  EXPECT_EQ(std::vector<int32_t>(out.begin(), out.begin() + 3), (std::vector<int32_t>{1, 5, 2}));
  EXPECT_TRUE(RanksBefore(0.5f, 2, 0.5f, 4));
  EXPECT_FALSE(RanksBefore(0.5f, 4, 0.5f, 2));
  EXPECT_TRUE(RanksBefore(0.6f, 9, 0.5f, 0));
}

TEST(RoutingTopK, RespectsEligibilityAndReportsShortfall) {
  const std::vector<float> s = {0.9f, 0.8f, 0.7f, 0.6f};
  const std::vector<uint8_t> eligible = {0, 1, 0, 1};
  std::vector<int32_t> out(3, -1);
  EXPECT_EQ(SelectTopK(s.data(), 4, 3, eligible.data(), out.data()), 2);
  EXPECT_EQ(out[0], 1);
  EXPECT_EQ(out[1], 3);
  EXPECT_EQ(SelectTopK(s.data(), 4, 0, nullptr, out.data()), 0);
}

TEST(RoutingGateWeights, ScaledOrNormalised) {
  const std::vector<float> sel = {0.5f, 0.25f, 0.125f};
  std::vector<float> w(3);
  ComputeGateWeights(sel.data(), 3, false, 16.0f, w.data());
  EXPECT_EQ(w, (std::vector<float>{8.0f, 4.0f, 2.0f}));
  ComputeGateWeights(sel.data(), 3, true, 16.0f, w.data());  // normalised: no scaling factor
  EXPECT_NEAR(w[0], 0.5 / 0.875, 1e-7);
  EXPECT_NEAR(w[1], 0.25 / 0.875, 1e-7);
  EXPECT_NEAR(w[2], 0.125 / 0.875, 1e-7);
  // The original code normalises only when top_k > 1; a single expert is scaled instead.
  ComputeGateWeights(sel.data(), 1, true, 2.0f, w.data());
  EXPECT_EQ(w[0], 1.0f);
  // All-zero scores (sigmoid underflow) stay finite thanks to the epsilon.
  const std::vector<float> zeros = {0.0f, 0.0f};
  ComputeGateWeights(zeros.data(), 2, true, 1.0f, w.data());
  EXPECT_EQ(w[0], 0.0f);
  EXPECT_EQ(w[1], 0.0f);
}

GateConfig V2Gate() {
  GateConfig c;
  c.num_experts = 160;
  c.top_k = 6;
  c.method = TopkMethod::kGroupLimitedGreedy;
  c.n_group = 8;
  c.topk_group = 3;
  c.routed_scaling_factor = 16.0f;
  return c;
}

void ExpectInvalid(const GateConfig& c, const char* field) {
  const Status s = ValidateGateConfig(c);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << field;
  EXPECT_NE(s.message().find(field), std::string::npos) << s.message();
}

TEST(RoutingGateConfig, AcceptsDeepSeekV2AndLite) {
  EXPECT_TRUE(ValidateGateConfig(V2Gate()).ok());
  GateConfig lite;
  lite.num_experts = 64;
  lite.top_k = 6;
  lite.n_group = 1;
  lite.topk_group = 1;
  EXPECT_TRUE(ValidateGateConfig(lite).ok());
}

TEST(RoutingGateConfig, RejectsEachBadField) {
  GateConfig c = V2Gate();
  c.num_experts = 0;
  ExpectInvalid(c, "n_routed_experts");
  c = V2Gate();
  c.top_k = 161;
  ExpectInvalid(c, "num_experts_per_tok");
  c.top_k = 0;
  ExpectInvalid(c, "num_experts_per_tok");
  c = V2Gate();
  c.n_group = 7;  // does not divide 160
  ExpectInvalid(c, "n_group");
  c.n_group = 0;
  ExpectInvalid(c, "n_group");
  c = V2Gate();
  c.topk_group = 9;
  ExpectInvalid(c, "topk_group");
  c.topk_group = 0;
  ExpectInvalid(c, "topk_group");
  c = V2Gate();
  c.topk_group = 1;  // one group of 20 experts cannot supply 21
  c.top_k = 21;
  ExpectInvalid(c, "fewer than num_experts_per_tok");
  c = V2Gate();
  c.routed_scaling_factor = std::numeric_limits<float>::quiet_NaN();
  ExpectInvalid(c, "routed_scaling_factor");
  c.routed_scaling_factor = 0.0f;
  ExpectInvalid(c, "routed_scaling_factor");
}

TEST(RoutingPlacement, ContiguousAndFlat) {
  const DevicePlacement p = ContiguousPlacement(12, 4);
  ASSERT_TRUE(ValidatePlacement(p, 12).ok());
  for (int32_t e = 0; e < 12; ++e) EXPECT_EQ(p.expert_devices[e], std::vector<int32_t>{e / 3});
  DevicePlacement replicated = p;
  replicated.expert_devices[5].push_back(0);
  const FlatPlacement flat = FlattenPlacement(replicated);
  EXPECT_EQ(flat.offsets.size(), 13u);
  EXPECT_EQ(flat.offsets[5], 5);
  EXPECT_EQ(flat.offsets[6], 7);
  EXPECT_EQ(flat.devices[5], 1);
  EXPECT_EQ(flat.devices[6], 0);
}

TEST(RoutingPlacement, RejectsBadPlacements) {
  DevicePlacement p = ContiguousPlacement(8, 2);
  EXPECT_NE(ValidatePlacement(p, 9).message().find("9 routed experts"), std::string::npos);
  p.expert_devices[3] = {};
  EXPECT_NE(ValidatePlacement(p, 8).message().find("expert 3 on no device"), std::string::npos);
  p.expert_devices[3] = {2};
  EXPECT_NE(ValidatePlacement(p, 8).message().find("device 2"), std::string::npos);
  p.expert_devices[3] = {1, 1};
  EXPECT_NE(ValidatePlacement(p, 8).message().find("twice"), std::string::npos);
  p.num_devices = 0;
  EXPECT_FALSE(ValidatePlacement(p, 8).ok());
}

TEST(RoutingDeviceLimit, ChecksEverySetOfMDevices) {
  const DevicePlacement p = ContiguousPlacement(160, 8);  // 20 experts per device
  EXPECT_TRUE(ValidateDeviceLimit(p, 160, 6, 3).ok());
  EXPECT_TRUE(ValidateDeviceLimit(p, 160, 20, 1).ok());
  EXPECT_FALSE(ValidateDeviceLimit(p, 160, 21, 1).ok());
  EXPECT_FALSE(ValidateDeviceLimit(p, 160, 6, 0).ok());
  EXPECT_FALSE(ValidateDeviceLimit(p, 160, 6, 9).ok());
  // Uneven: device 2 hosts a single expert, and so does device 3, which also holds a replica of
  // that same expert, so {2, 3} host one distinct expert.
  DevicePlacement uneven;
  uneven.num_devices = 4;
  uneven.expert_devices = {{0}, {0}, {0}, {1}, {1}, {1}, {2, 3}};
  const Status s = ValidateDeviceLimit(uneven, 7, 2, 2);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("devices {2,3} together host only 1"), std::string::npos)
      << s.message();
  EXPECT_TRUE(ValidateDeviceLimit(uneven, 7, 1, 2).ok());
  EXPECT_TRUE(ValidateDeviceLimit(uneven, 7, 4, 3).ok());  // worst sets {0,2,3}, {1,2,3}: 4
  EXPECT_FALSE(ValidateDeviceLimit(uneven, 7, 5, 3).ok());
}

TEST(RoutingDispatch, PrefersUsedDeviceThenLeastLoadedThenLowerIndex) {
  DevicePlacement p;
  p.num_devices = 4;
  p.expert_devices = {{0}, {1, 2}, {2, 3}, {3, 1}, {1, 3}};
  const FlatPlacement flat = FlattenPlacement(p);
  std::vector<int64_t> load = {0, 5, 5, 1};
  std::vector<int32_t> dev(3);
  // Expert 1: replicas on 1 and 2, equal load 5: lower index (1). Expert 2: replicas 2 and 3,
  // none used: device 3 (load 1). Expert 3: replicas 3 and 1, both used: least loaded is 3 (2).
  const std::vector<int32_t> ids = {1, 2, 3};
  ASSERT_TRUE(AssignDevices(flat, ids.data(), 3, nullptr, load.data(), dev.data()));
  EXPECT_EQ(dev, (std::vector<int32_t>{1, 3, 3}));
  EXPECT_EQ(load, (std::vector<int64_t>{0, 6, 5, 3}));
  // Expert 1 -> 2 (load 0 < 9); expert 4: replicas 1 (9) and 3 (0), none used -> 3.
  std::vector<int64_t> load2 = {0, 9, 0, 0};
  const std::vector<int32_t> ids2 = {1, 4};
  std::vector<int32_t> dev2(2);
  ASSERT_TRUE(AssignDevices(flat, ids2.data(), 2, nullptr, load2.data(), dev2.data()));
  EXPECT_EQ(dev2, (std::vector<int32_t>{2, 3}));
  // A used device beats a less loaded one: expert 1 -> 1 (5 < 9); expert 4 then stays on 1
  // (used, load 6) rather than 3 (load 0).
  std::vector<int64_t> load3 = {0, 5, 9, 0};
  ASSERT_TRUE(AssignDevices(flat, ids2.data(), 2, nullptr, load3.data(), dev2.data()));
  EXPECT_EQ(dev2, (std::vector<int32_t>{1, 1}));
  EXPECT_EQ(load3, (std::vector<int64_t>{0, 7, 9, 0}));
  // Equal loads among unused replicas: the lower device index (expert 2 -> 2, not 3).
  const std::vector<int32_t> ids3 = {2, 4};
  std::vector<int64_t> load4 = {0, 0, 1, 1};
  ASSERT_TRUE(AssignDevices(flat, ids3.data(), 2, nullptr, load4.data(), dev2.data()));
  EXPECT_EQ(dev2, (std::vector<int32_t>{2, 1}));
  // Allowed devices restrict the replicas; an expert with none allowed is reported.
  const std::vector<uint8_t> allowed = {1, 0, 1, 0};
  std::vector<int64_t> load5(4, 0);
  ASSERT_TRUE(AssignDevices(flat, ids.data(), 2, allowed.data(), load5.data(), dev.data()));
  EXPECT_EQ(dev[0], 2);
  EXPECT_EQ(dev[1], 2);
  EXPECT_FALSE(AssignDevices(flat, ids.data() + 2, 1, allowed.data(), load5.data(), dev.data()));
  EXPECT_EQ(dev[0], -1);
}

TEST(RoutingDivergence, ComparesSetsNotOrder) {
  const std::vector<int32_t> a = {1, 2, 3, 4, 5, 6};
  const std::vector<int32_t> b = {3, 2, 1, 4, 5, 7};
  EXPECT_FALSE(SelectionDiffers(a.data(), b.data(), 3));
  EXPECT_TRUE(SelectionDiffers(a.data() + 3, b.data() + 3, 3));
  EXPECT_EQ(CountDifferingTokens(a, b, 3), 1);
  EXPECT_EQ(CountDifferingTokens(a, a, 3), 0);
  EXPECT_EQ(CountDifferingTokens(a, b, 1), 3);  // 1/3, 2/2, 3/1, 4/4, 5/5, 6/7
}

}  // namespace
}  // namespace kubemoe::routing
